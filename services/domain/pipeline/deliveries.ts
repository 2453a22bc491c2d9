import type { StateStore } from "../../ports/store.js";
import { MAX_DELIVERY_KEY, replayAnswer, type PushAnswer, type TriggerResult } from "./triggers.js";

/**
 * For doors whose work is more than one push intake (the redeploy hook resolves a ref first): a
 * delivery with an id already seen is answered as the first one was, and starts nothing. The id is
 * claimed before the work, so two racing redeliveries cannot both build. Pushes that go straight to
 * TriggerService.push pass the id along instead; the intake script claims it atomically.
 */
export async function answerOnce(
  store: StateStore,
  tool: string,
  key: string | undefined,
  work: () => Promise<TriggerResult>,
): Promise<PushAnswer> {
  if (!key) return work();
  const k = key.slice(0, MAX_DELIVERY_KEY);
  const seen = await store.rememberDelivery(tool, k, "pending");
  if (seen !== undefined) return replayAnswer(seen);
  const result = await work();
  await store.answerDelivery(tool, k, JSON.stringify(result));
  return result;
}
