import type { Request, Response } from "express";
import { InputError } from "../../platform/errors.js";
import type { PageKey } from "../../ports/store.js";

/** How many items a list endpoint answers when asked for none, and the most it answers at once. */
export interface PageLimits {
  readonly defaultLimit: number;
  readonly maxLimit: number;
}

export const TOOL_PAGES: PageLimits = { defaultLimit: 100, maxLimit: 1000 };
export const JOB_PAGES: PageLimits = { defaultLimit: 100, maxLimit: 1000 };
export const BUILD_PAGES: PageLimits = { defaultLimit: 50, maxLimit: 500 };

/** One page of a list: at most `limit` items, from just after `after` (from the start when undefined). */
export interface Page {
  readonly limit: number;
  readonly after: PageKey | undefined;
}

// A cursor is the key of the previous page's last item (its time and id or name), base64url-encoded:
// the next page starts after that item wherever it now is, so items added or removed while a client
// walks the pages neither repeat nor skip others. Clients take it from the Link header and never build it.
const DIGITS = /^[0-9]{1,9}$/;
const KEY = /^([0-9]{1,15})\.([A-Za-z0-9_-]{1,200})$/;

function encodeCursor(key: PageKey): string {
  return Buffer.from(`${key.at}.${key.id}`).toString("base64url");
}

function decodeCursor(cursor: unknown): PageKey | undefined {
  if (typeof cursor !== "string" || cursor.length > 300) return undefined;
  const m = KEY.exec(Buffer.from(cursor, "base64url").toString());
  return m ? { at: Number(m[1]), id: m[2]! } : undefined;
}

/** `?limit=&cursor=` of a list request; anything else than what the Link header hands out is a 400. */
export function pageOf(req: Request, limits: PageLimits): Page {
  const { limit, cursor } = req.query;
  let n = limits.defaultLimit;
  if (limit !== undefined) {
    n = typeof limit === "string" && DIGITS.test(limit) ? Number(limit) : 0;
    if (n < 1 || n > limits.maxLimit) {
      throw new InputError(`limit must be a whole number from 1 to ${limits.maxLimit}`, {
        details: { field: "limit" },
      });
    }
  }
  if (cursor === undefined) return { limit: n, after: undefined };
  const after = decodeCursor(cursor);
  if (!after) {
    throw new InputError('invalid cursor: use the one in the previous page\'s Link: <…>; rel="next" header', {
      details: { field: "cursor" },
    });
  }
  return { limit: n, after };
}

/**
 * Answers one page as a JSON array (as the unpaged endpoints did). `items` are the list from the page's
 * start, with at least one more than the page when another page follows: then a
 * `Link: <…>; rel="next"` header carries the same request with a cursor after the page's last item
 * (`keyOf` gives an item's key).
 */
export function sendPage<T, V>(
  req: Request,
  res: Response,
  page: Page,
  items: readonly T[],
  keyOf: (item: T) => PageKey,
  view: (item: T) => V,
): void {
  const shown = items.slice(0, page.limit);
  const last = shown[shown.length - 1];
  if (items.length > page.limit && last !== undefined) {
    const next = new URL(req.originalUrl, "http://slipway.invalid");
    next.searchParams.set("limit", String(page.limit));
    next.searchParams.set("cursor", encodeCursor(keyOf(last)));
    res.setHeader("Link", `<${next.pathname}${next.search}>; rel="next"`);
  }
  res.json(shown.map(view));
}
