import { MemoryStore } from "../fakes/memory-store.js";
import { stateStoreContract } from "../contracts/state-store.js";

// The fake the domain's unit tests use, held to the contract RedisStore passes (test/store-contract.test.ts).
const store = new MemoryStore();
stateStoreContract("MemoryStore (test/fakes)", () => store);
