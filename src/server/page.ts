/**
 * The page at `/`: models, their channels, every version with its AP50, the devices and the
 * version each last reported running, and the latest jobs. Plain HTML, no script.
 */
import type { DeviceReport, JobRecord, ModelRecord } from './registry.js';

const esc = (s: unknown): string =>
  String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const ap = (v: number | null) => (v === null ? '—' : (v * 100).toFixed(2));
const ago = (iso: string, now: number): string => {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 120 ? `${s} s ago` : s < 7200 ? `${Math.round(s / 60)} min ago` : s < 172800 ? `${Math.round(s / 3600)} h ago` : `${Math.round(s / 86400)} d ago`;
};

export interface PageData {
  models: Record<string, ModelRecord>;
  reports: Record<string, DeviceReport>;
  devices: string[];
  jobs: JobRecord[];
  pool: number;
  version: string;
}

export function renderPage(d: PageData, now = Date.now()): string {
  const parts: string[] = [];
  parts.push(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>zeroq weight sets</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border-bottom:1px solid #ddd;padding:.25em .7em;text-align:left}
th{background:#f4f4f4}
td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:12px}
.ch{display:inline-block;background:#e6eefc;border-radius:3px;padding:0 .4em;margin-right:.3em}
</style></head><body>
<h1>zeroq weight sets</h1>`);
  const names = Object.keys(d.models).sort();
  if (names.length === 0) parts.push('<p>No weight set published yet (<code>zeroq publish SET.zqw --server URL --channel stable --token T</code>).</p>');
  for (const name of names) {
    const m = d.models[name];
    const byVersion = new Map<number, string[]>();
    for (const [c, rec] of Object.entries(m.channels)) byVersion.set(rec.version, [...(byVersion.get(rec.version) ?? []), c]);
    parts.push(`<h2>${esc(name)}</h2><table><tr><th>channel</th><th>version</th><th>AP50</th><th>weight set</th><th>since</th></tr>`);
    for (const [c, rec] of Object.entries(m.channels).sort()) {
      const v = m.versions.find((x) => x.version === rec.version)!;
      parts.push(`<tr><td>${esc(c)}</td><td class="n">${v.version}</td><td class="n">${ap(v.ap50)}</td><td><code>${esc(v.id)}</code></td><td>${esc(ago(rec.history.at(-1)?.time ?? v.time, now))}</td></tr>`);
    }
    parts.push('</table><table><tr><th>version</th><th>channels</th><th>AP50</th><th>bits</th><th>parent</th><th>published by</th><th>when</th><th>sha256</th></tr>');
    for (const v of [...m.versions].reverse()) {
      const chs = (byVersion.get(v.version) ?? []).map((c) => `<span class="ch">${esc(c)}</span>`).join('');
      parts.push(`<tr><td class="n">${v.version}</td><td>${chs}</td><td class="n">${ap(v.ap50)}</td><td class="n">${v.bits}</td><td class="n">${v.parent ?? '—'}</td><td>${esc(v.publisher)}</td><td>${esc(v.time.replace('T', ' ').slice(0, 19))}</td><td><code>${esc(v.sha256.slice(0, 12))}</code></td></tr>`);
    }
    parts.push('</table>');
  }
  parts.push('<h2>Devices</h2>');
  const ids = [...new Set([...d.devices, ...Object.keys(d.reports)])].sort();
  if (ids.length === 0) parts.push('<p>No device registered.</p>');
  else {
    parts.push('<table><tr><th>device</th><th>model</th><th>channel</th><th>runs version</th><th>state</th><th>last report</th></tr>');
    for (const id of ids) {
      const r = d.reports[id];
      parts.push(
        r
          ? `<tr><td>${esc(id)}</td><td>${esc(r.model)}</td><td>${esc(r.channel)}</td><td class="n">${r.version ?? (r.running ? `<code>${esc(r.running.slice(0, 12))}</code>` : '—')}</td><td>${esc(r.state ?? '')}</td><td>${esc(ago(r.time, now))}</td></tr>`
          : `<tr><td>${esc(id)}</td><td colspan="5">never reported</td></tr>`,
      );
    }
    parts.push('</table>');
  }
  parts.push(`<h2>Jobs</h2><p>Hard frames in the pool: ${d.pool}</p>`);
  const jobs = [...d.jobs].reverse().slice(0, 20);
  if (jobs.length > 0) {
    parts.push('<table><tr><th>job</th><th>model</th><th>state</th><th>result</th></tr>');
    for (const j of jobs) parts.push(`<tr><td><code>${esc(j.id)}</code></td><td>${esc(j.model)}</td><td>${esc(j.state)}</td><td>${esc(j.result ?? '')}</td></tr>`);
    parts.push('</table>');
  }
  parts.push(`<p style="color:#888">zeroq ${esc(d.version)} · API: <code>/v1/models</code> (docs/formats/update-protocol.md)</p></body></html>\n`);
  return parts.join('\n');
}
