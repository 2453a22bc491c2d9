/**
 * The dashboard's one stylesheet and one script, served from /ui/static/: no CDN, no front-end build.
 * The script follows a build's log (the same stream `slipway build logs -f` reads) into the page.
 */
export const CSS = `:root{color-scheme:light;--fg:#1b1b1b;--bg:#fff;--muted:#555;--line:#c8c8c8;--accent:#0b57a4;--ok:#146c2e;--bad:#a4161a;--warn:#7a4b00}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;padding:.6rem 1rem;border-bottom:1px solid var(--line);background:#f3f5f8}
.brand{font-weight:700;color:var(--fg);text-decoration:none;font-size:1.15rem}
.who{margin-left:auto;color:var(--muted)}
main{padding:1rem;max-width:72rem;margin:0 auto}
h1{font-size:1.5rem;margin:.5rem 0 1rem}h2{font-size:1.2rem;margin:1.5rem 0 .5rem;border-bottom:1px solid var(--line)}
a{color:var(--accent)}
a:focus-visible,button:focus-visible,input:focus-visible,pre:focus-visible{outline:3px solid #f0a500;outline-offset:2px}
button,.button{font:inherit;padding:.45rem .9rem;border:1px solid var(--accent);border-radius:4px;background:var(--accent);color:#fff;cursor:pointer;text-decoration:none;display:inline-block}
button.danger{background:var(--bad);border-color:var(--bad)}
header button{background:#fff;color:var(--accent)}
input{font:inherit;padding:.45rem;border:1px solid #767676;border-radius:4px;width:100%;max-width:28rem}
.stack{display:flex;flex-direction:column;gap:.5rem;align-items:flex-start}.inline{display:inline}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:.5rem;background:#fff;padding:.3rem;z-index:1}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.95rem}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
tr.live{background:#eef7f0}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}.facts dt{font-weight:600}.facts dd{margin:0;min-width:0}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}.wrap{overflow-wrap:anywhere}
pre{overflow-x:auto}
.log{background:#111;color:#eee;padding:.75rem;border-radius:4px;max-height:70vh;overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere;font-size:.85rem}
.status{font-weight:600;padding:0 .3rem;border-radius:3px;border:1px solid currentColor}
.status-live,.status-success,.status-succeeded,.status-ok,.status-running{color:var(--ok)}
.status-failure,.status-failed,.status-down,.status-timeout,.status-lost{color:var(--bad)}
.status-pending,.status-deploying,.status-waiting{color:var(--warn)}
.error{color:var(--bad);font-weight:600}.flash{background:#eef7f0;border:1px solid var(--ok);padding:.5rem;border-radius:4px}
.guide{background:#f3f5f8;border:1px solid var(--line);padding:.5rem 1rem;border-radius:4px}
.names{columns:2 12rem}.names li{margin-bottom:.3rem}.names button{padding:.1rem .5rem;font-size:.85em;margin-left:.4rem}
.spark{color:var(--accent);vertical-align:middle}
@media (max-width:40rem){main{padding:.6rem}.facts{grid-template-columns:1fr}.facts dd{margin-bottom:.4rem}
table,tbody,tr,td{display:block}thead{position:absolute;left:-9999px}tr{border:1px solid var(--line);border-radius:4px;margin:0 0 .6rem;padding:.3rem .5rem}
td{border:0;padding:.15rem 0;overflow-wrap:anywhere}td::before{content:attr(data-label) ": ";font-weight:600}}
`;

export const JS = `"use strict";
(function () {
  var log = document.getElementById("build-log");
  var status = document.getElementById("build-status");
  if (!log || !log.dataset.follow || !window.fetch || !window.TextDecoder) return;
  var url = log.dataset.follow;
  function show(line) {
    var m = /^===> LIVE: /.exec(line);
    if (m) { status.textContent = "live"; return; }
    m = /^===> DEPLOY FAILED: (.*)/.exec(line);
    if (m) { status.textContent = "deploy failed: " + m[1]; return; }
    m = /^--- build (\\w+)(?:: (.*))?$/.exec(line);
    if (m && status.textContent !== "live") status.textContent = m[1] + (m[2] ? ": " + m[2] : "");
  }
  fetch(url, { credentials: "same-origin" }).then(function (res) {
    if (!res.ok || !res.body) return;
    log.textContent = "";
    status.textContent = status.textContent + " (following)";
    var reader = res.body.getReader();
    var decoder = new TextDecoder();
    var rest = "";
    function pump() {
      return reader.read().then(function (r) {
        if (r.done) {
          if (/\\(following\\)$/.test(status.textContent)) status.textContent = status.textContent.replace(/ \\(following\\)$/, "");
          return;
        }
        var text = rest + decoder.decode(r.value, { stream: true });
        var lines = text.split("\\n");
        rest = lines.pop();
        var stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
        log.appendChild(document.createTextNode(lines.map(function (l) { return l + "\\n"; }).join("")));
        lines.forEach(show);
        if (stick) log.scrollTop = log.scrollHeight;
        return pump();
      });
    }
    return pump();
  }).catch(function () { status.textContent += " (log stream lost; reload to follow again)"; });
})();
`;
