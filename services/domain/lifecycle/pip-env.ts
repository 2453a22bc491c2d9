/**
 * The environment that points pip at an operator's package index (SLIPWAY_PIP_INDEX_URL), or none for
 * pip's default. An index on plain HTTP (a local mirror) must also be a trusted host, or pip refuses it.
 */
export function pipEnvironment(indexUrl: string | undefined): Record<string, string> {
  if (!indexUrl) return {};
  const url = new URL(indexUrl);
  return url.protocol === "http:"
    ? { PIP_INDEX_URL: indexUrl, PIP_TRUSTED_HOST: url.host }
    : { PIP_INDEX_URL: indexUrl };
}
