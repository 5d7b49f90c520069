/**
 * `GET /api/docs`: a readable page over `/api/openapi.json`, self-contained (no CDN), so it
 * works on a hub without internet access. Its script and style are files of their own, so the
 * page runs under a Content-Security-Policy without inline code.
 *
 * @module
 */
import type { Hono } from 'hono';
import type { HubEnv } from './router.js';

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Mowthos Hub API</title>
<link rel="stylesheet" href="/api/docs/docs.css">
</head>
<body>
<h1>Mowthos Hub API</h1>
<p>Send <code>Authorization: Bearer &lt;token&gt;</code> (a session from <code>POST /api/auth/login</code> or an API token).
Errors are <code>{"error":{"code":"HUB_ERR_…","message":"…","details":…}}</code>.
The machine-readable document is <a href="/api/openapi.json">/api/openapi.json</a>; the WebSocket API at
<code>/api/websocket</code> speaks Home Assistant's protocol.</p>
<div id="ops">Loading…</div>
<script src="/api/docs/docs.js"></script>
</body>
</html>`;

const STYLE = `  body { font: 15px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 60rem; padding: 1rem 2rem; color: #1d2a1d; }
  h1 { color: #2f6b2f; } h2 { border-bottom: 1px solid #ccd; margin-top: 2rem; }
  details { border: 1px solid #dde; border-radius: 6px; margin: .4rem 0; padding: .3rem .7rem; }
  summary { cursor: pointer; } code, pre { font: 13px ui-monospace, monospace; }
  pre { background: #f5f7f5; padding: .6rem; overflow: auto; }
  .m { display: inline-block; width: 4.5rem; font-weight: 700; } .get { color: #2a62a8; } .post { color: #2f7a2f; }
  .patch { color: #9a6a00; } .delete { color: #a83232; }
`;

const SCRIPT = `fetch('/api/openapi.json').then((r) => r.json()).then((doc) => {
  const byTag = {};
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      (byTag[(op.tags || ['Other'])[0]] ??= []).push({ path, method, op });
    }
  }
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
  const json = (v) => '<pre>' + esc(JSON.stringify(v, null, 2)) + '</pre>';
  document.getElementById('ops').innerHTML = Object.entries(byTag).map(([tag, ops]) =>
    '<h2>' + esc(tag) + '</h2>' + ops.map(({ path, method, op }) =>
      '<details><summary><span class="m ' + method + '">' + method.toUpperCase() + '</span><code>' + esc(path) +
      '</code> — ' + esc(op.summary || '') + '</summary>' + (op.description ? '<p>' + esc(op.description) + '</p>' : '') +
      (op.parameters ? '<h4>Parameters</h4>' + json(op.parameters) : '') +
      (op.requestBody ? '<h4>Body</h4>' + json(op.requestBody.content['application/json'].schema) : '') +
      '<h4>Responses</h4>' + json(Object.fromEntries(Object.entries(op.responses).map(([s, r]) => [s, r.description]))) +
      '</details>').join('')).join('') + '<h2>Schemas</h2>' + json(doc.components.schemas);
});
`;

/** The page and its files, open without authentication. */
export const PUBLIC_DOCS_ROUTES = ['GET /api/docs', 'GET /api/docs/docs.js', 'GET /api/docs/docs.css'];

/** Serves the docs page and its script and style on the app. */
export function mountDocs(app: Hono<HubEnv>): void {
  app.get('/api/docs', (c) => c.html(PAGE));
  app.get('/api/docs/docs.js', (c) => c.body(SCRIPT, 200, { 'Content-Type': 'text/javascript; charset=utf-8' }));
  app.get('/api/docs/docs.css', (c) => c.body(STYLE, 200, { 'Content-Type': 'text/css; charset=utf-8' }));
}
