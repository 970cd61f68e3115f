/**
 * The dashboard's style sheet. Every text colour pair is at least 4.5:1 against its
 * background (WCAG AA); states are told apart by a glyph and a word as well as by
 * colour, so colour is never the only signal.
 */

export const DASHBOARD_CSS = `
:root {
  --bg: #f5f7fa; --panel: #ffffff; --text: #101828; --muted: #475467; --line: #d0d5dd;
  --accent: #1849a9; --focus: #1849a9;
  --healthy-bg: #d1fadf; --healthy-fg: #05603a;
  --suspect-bg: #fef0c7; --suspect-fg: #7a2e0e;
  --dead-bg: #fee4e2; --dead-fg: #912018;
  --disconnected-bg: #e4e7ec; --disconnected-fg: #344054;
  --connecting-bg: #d1e9ff; --connecting-fg: #194185;
  --closed-bg: #f2f4f7; --closed-fg: #475467;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif;
  color: var(--text); background: var(--bg); line-height: 1.4;
}
* { box-sizing: border-box; }
body { margin: 0; }
.skip { position: absolute; left: -999px; top: 0; background: var(--panel); color: var(--accent); padding: 8px 12px; }
.skip:focus { left: 8px; top: 8px; z-index: 10; }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.top { background: #0b1f3a; color: #ffffff; padding: 12px 24px; display: flex; flex-wrap: wrap; gap: 8px 24px; align-items: baseline; }
.top h1 { margin: 0; font-size: 1.4rem; letter-spacing: 0.02em; }
.top p { margin: 0; }
.top .feed { margin-left: auto; }
.pill { display: inline-block; padding: 1px 8px; border-radius: 999px; background: #ffffff; color: #101828; font-size: 0.85rem; margin-left: 6px; }
.pill.not-ready { background: #fee4e2; color: #912018; }
.pill.ready { background: #d1fadf; color: #05603a; }
main { padding: 16px 24px 32px; max-width: 1400px; margin: 0 auto; }
h2 { font-size: 1.05rem; margin: 20px 0 8px; }
section { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 4px 16px 16px; margin-top: 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; margin: 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
.card dt { color: var(--muted); font-size: 0.85rem; }
.card dd { margin: 2px 0 0; font-size: 1.5rem; font-variant-numeric: tabular-nums; }
.card dd.load-high { color: var(--dead-fg); font-weight: 700; }
.dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 6px; border: 2px solid currentColor; }
.dot.state-healthy { background: var(--healthy-fg); color: var(--healthy-fg); }
.dot.state-suspect { background: var(--suspect-bg); color: var(--suspect-fg); }
.dot.state-dead { background: var(--dead-fg); color: var(--dead-fg); }
.dot.state-disconnected { background: var(--disconnected-bg); color: var(--disconnected-fg); }
.toolbar { display: flex; flex-wrap: wrap; gap: 8px 12px; align-items: center; margin-bottom: 8px; }
.toolbar label { font-weight: 600; }
.toolbar input { font: inherit; padding: 4px 8px; border: 1px solid #667085; border-radius: 4px; min-width: 16rem; color: var(--text); background: #ffffff; }
.hint { color: var(--muted); font-size: 0.85rem; }
.table-wrap { overflow: auto; max-height: 60vh; border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); white-space: nowrap; }
thead th { position: sticky; top: 0; background: #eaecf0; font-size: 0.85rem; color: #101828; z-index: 1; }
tbody th { font-weight: 600; }
th button { font: inherit; font-weight: 600; color: inherit; background: none; border: 0; padding: 0; cursor: pointer; }
th button::after { content: ""; margin-left: 4px; }
th[aria-sort="ascending"] button::after { content: "\\25B2"; }
th[aria-sort="descending"] button::after { content: "\\25BC"; }
.num { text-align: right; }
tbody tr:hover { background: #f9fafb; }
tr[data-state="dead"] { background: #fffbfa; }
tr[data-state="closed"] td { color: var(--muted); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-weight: 700; font-size: 0.8rem; letter-spacing: 0.03em; border: 1px solid currentColor; }
.state-healthy.badge { background: var(--healthy-bg); color: var(--healthy-fg); }
.state-suspect.badge { background: var(--suspect-bg); color: var(--suspect-fg); }
.state-dead.badge { background: var(--dead-bg); color: var(--dead-fg); }
.state-disconnected.badge { background: var(--disconnected-bg); color: var(--disconnected-fg); }
.state-connecting.badge { background: var(--connecting-bg); color: var(--connecting-fg); }
.state-closed.badge { background: var(--closed-bg); color: var(--closed-fg); }
.spark { display: block; }
.spark polyline { fill: none; stroke: var(--accent); stroke-width: 1.5; }
.spark .base { stroke: #d0d5dd; stroke-width: 1; }
td[data-col="change"] { white-space: normal; min-width: 16rem; color: var(--muted); font-size: 0.9rem; }
.empty { color: var(--muted); padding: 8px 12px; margin: 0; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr)); gap: 0 16px; }
figure { margin: 0; }
figcaption { color: var(--muted); font-size: 0.9rem; margin-top: 4px; }
.chart { width: 100%; height: auto; max-height: 240px; }
.chart text { font-size: 11px; fill: #344054; }
.chart .axis { stroke: #98a2b3; stroke-width: 1; }
.chart .bar { fill: var(--accent); }
table.small { margin-top: 8px; font-size: 0.85rem; }
table.small th, table.small td { white-space: normal; padding: 4px 8px; }
table.small thead th { position: static; }
table.small tbody th { font-weight: 600; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; border-radius: 2px; }
.events { list-style: none; padding: 0; margin: 0; max-height: 16rem; overflow: auto; font-size: 0.9rem; }
.events li { padding: 3px 0; border-bottom: 1px solid #eaecf0; }
.events time { color: var(--muted); margin-right: 8px; font-variant-numeric: tabular-nums; }
`;
