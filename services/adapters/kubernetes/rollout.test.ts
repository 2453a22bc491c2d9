import { describe, expect, it } from "vitest";
import { creationFailureKind, creationFailureText, replicaFailure } from "./rollout.js";

describe("refused pod creations", () => {
  it("tells a quota not counted yet (retried into success) from a used-up quota and an admission refusal", () => {
    expect(
      creationFailureKind(
        'Error creating: pods "web-1" is forbidden: status unknown for quota: tool-quota, resources: pods',
      ),
    ).toBe("transient");
    expect(
      creationFailureKind(
        'Error creating: pods "web-1" is forbidden: exceeded quota: tool-quota, requested: limits.memory=2Gi, used: limits.memory=8Gi, limited: limits.memory=8Gi',
      ),
    ).toBe("quota");
    expect(
      creationFailureKind(
        'Error creating: pods "web-1" is forbidden: maximum cpu usage per Container is 2, but limit is 3',
      ),
    ).toBe("refused");
    expect(creationFailureText('Error creating: pods "web-1" is forbidden: x')).toBe(
      'pods "web-1" is forbidden: x',
    );
  });

  it("reads the Deployment's ReplicaFailure condition only while it stands", () => {
    const failing = {
      status: {
        conditions: [
          { type: "ReplicaFailure", status: "True", reason: "FailedCreate", message: "forbidden: x" },
        ],
      },
    };
    expect(replicaFailure(failing)).toBe("forbidden: x");
    expect(
      replicaFailure({ status: { conditions: [{ type: "ReplicaFailure", status: "False" }] } }),
    ).toBeUndefined();
    expect(replicaFailure({})).toBeUndefined();
  });
});
