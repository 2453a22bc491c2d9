import type { Request, Response } from "express";
import { InputError } from "../../platform/errors.js";

/** How many items a list endpoint answers when asked for none, and the most it answers at once. */
export interface PageLimits {
  readonly defaultLimit: number;
  readonly maxLimit: number;
}

export const TOOL_PAGES: PageLimits = { defaultLimit: 100, maxLimit: 1000 };
export const JOB_PAGES: PageLimits = { defaultLimit: 100, maxLimit: 1000 };
export const BUILD_PAGES: PageLimits = { defaultLimit: 50, maxLimit: 500 };

/** One page of a list: skip `offset` items, answer at most `limit`. */
export interface Page {
  readonly limit: number;
  readonly offset: number;
}

// A cursor is the offset of the next page's first item. Clients take it from the Link header and never
// build it, so it may become a key (a name, a time) later without breaking them.
const DIGITS = /^[0-9]{1,9}$/;

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
  if (cursor === undefined) return { limit: n, offset: 0 };
  if (typeof cursor !== "string" || !DIGITS.test(cursor)) {
    throw new InputError('invalid cursor: use the one in the previous page\'s Link: <…>; rel="next" header', {
      details: { field: "cursor" },
    });
  }
  return { limit: n, offset: Number(cursor) };
}

/**
 * Answers one page as a JSON array (as the unpaged endpoints did). `items` are the list from the page's
 * offset on, with at least one more than the page when another page follows: then a
 * `Link: <…>; rel="next"` header carries the same request with the next cursor.
 */
export function sendPage<T>(req: Request, res: Response, page: Page, items: readonly T[]): void {
  if (items.length > page.limit) {
    const next = new URL(req.originalUrl, "http://slipway.invalid");
    next.searchParams.set("limit", String(page.limit));
    next.searchParams.set("cursor", String(page.offset + page.limit));
    res.setHeader("Link", `<${next.pathname}${next.search}>; rel="next"`);
  }
  res.json(items.slice(0, page.limit));
}
