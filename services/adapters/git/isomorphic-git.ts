import { createRequire } from "node:module";

/**
 * isomorphic-git, loaded with `require`. Under Node its package exports a CommonJS build; importing that
 * from an ES module makes Node run its CommonJS export lexer over the 570 KB bundle, whose working memory
 * is never given back: about 8 MiB of peak RSS for every process that fetches, for nothing.
 */
const git = createRequire(import.meta.url)("isomorphic-git") as typeof import("isomorphic-git");

export default git;
export const { Errors } = git;
