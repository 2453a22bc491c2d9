import { describe, expect, it } from "vitest";
import type { GitlabLinkRecord } from "../../ports/forge-links.js";
import { isLinkedRepository } from "./repository.js";

const link = {
  gitlab_url: "https://gitlab.example.org",
  project_path: "Group/Sub/App",
  http_url: "https://gitlab.example.org/Group/Sub/App.git",
} as GitlabLinkRecord;

describe("isLinkedRepository", () => {
  it.each([
    "https://gitlab.example.org/Group/Sub/App.git",
    "https://gitlab.example.org/group/sub/app",
    "https://gitlab.example.org/group/sub/app.git/",
    "https://someone:pw@gitlab.example.org/group/sub/app.git",
  ])("accepts the linked project as %s", (url) => {
    expect(isLinkedRepository(link, url)).toBe(true);
  });

  it.each([
    "https://gitlab.example.org/group/sub/app-fork.git",
    "https://gitlab.example.org/group/sub.git",
    "http://gitlab.example.org/group/sub/app.git",
    "https://gitlab.example.org:8443/group/sub/app.git",
    "https://evil.example.org/group/sub/app.git",
    "not a url",
  ])("refuses %s", (url) => {
    expect(isLinkedRepository(link, url)).toBe(false);
  });
});
