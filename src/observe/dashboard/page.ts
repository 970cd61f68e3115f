/**
 * The dashboard page. Plain HTML with no inline script or style, so that the admin
 * endpoint can serve it under a Content-Security-Policy that allows only its own
 * dashboard.js and dashboard.css (no external assets, nothing to build).
 */

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>heartline dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="dashboard.css">
<script src="dashboard.js" defer></script>
</head>
<body>
<a class="skip" href="#connections">Skip to the connections table</a>
<header class="top">
  <h1>heartline</h1>
  <p class="server">Server <span id="server-address">(unknown)</span>
    <span id="server-ready" class="pill">waiting for data</span></p>
  <p id="feed-status" class="feed" role="status">Connecting to the live feed&hellip;</p>
</header>
<main>
  <section aria-labelledby="summary-title">
    <h2 id="summary-title">Summary</h2>
    <dl class="cards">
      <div class="card"><dt>Connections</dt><dd id="sum-total">0</dd></div>
      <div class="card"><dt><span class="dot state-healthy" aria-hidden="true"></span>Healthy</dt><dd id="sum-healthy">0</dd></div>
      <div class="card"><dt><span class="dot state-suspect" aria-hidden="true"></span>Suspect</dt><dd id="sum-suspect">0</dd></div>
      <div class="card"><dt><span class="dot state-dead" aria-hidden="true"></span>Dead</dt><dd id="sum-dead">0</dd></div>
      <div class="card"><dt><span class="dot state-disconnected" aria-hidden="true"></span>Disconnected</dt><dd id="sum-disconnected">0</dd></div>
      <div class="card"><dt>Load level</dt><dd id="load-level">normal (0)</dd></div>
      <div class="card"><dt>Event-loop delay p99</dt><dd id="loop-p99">&ndash;</dd></div>
    </dl>
  </section>

  <section id="connections" aria-labelledby="connections-title">
    <h2 id="connections-title">Connections</h2>
    <div class="toolbar">
      <label for="filter">Filter rows</label>
      <input id="filter" type="search" autocomplete="off" spellcheck="false"
        aria-describedby="filter-help">
      <span id="filter-help" class="hint">by id, remote address or state</span>
      <span id="row-count" class="hint"></span>
    </div>
    <div class="table-wrap" tabindex="0" role="region" aria-labelledby="connections-title">
      <table id="conn-table">
        <caption class="visually-hidden">One row per connection, worst state first. Column
          headers sort the table.</caption>
        <thead>
          <tr>
            <th scope="col" aria-sort="none"><button type="button" data-sort="id">ID</button></th>
            <th scope="col" aria-sort="none"><button type="button" data-sort="remote">Remote</button></th>
            <th scope="col" aria-sort="none"><button type="button" data-sort="state">State</button></th>
            <th scope="col" aria-sort="none" class="num"><button type="button" data-sort="rtt">RTT</button></th>
            <th scope="col">RTT, last minute</th>
            <th scope="col" aria-sort="none" class="num"><button type="button" data-sort="heard">Last heard</button></th>
            <th scope="col" aria-sort="none" class="num"><button type="button" data-sort="in">Messages in</button></th>
            <th scope="col" aria-sort="none" class="num"><button type="button" data-sort="out">Messages out</button></th>
            <th scope="col">Last change</th>
          </tr>
        </thead>
        <tbody id="conn-rows"></tbody>
      </table>
      <p id="no-rows" class="empty">No connections yet.</p>
    </div>
  </section>

  <div class="charts">
    <section aria-labelledby="rtt-title">
      <h2 id="rtt-title">RTT distribution</h2>
      <figure>
        <svg id="rtt-chart" class="chart" viewBox="0 0 420 180" role="img"
          aria-labelledby="rtt-title rtt-desc"></svg>
        <figcaption id="rtt-desc">No RTT samples yet.</figcaption>
      </figure>
    </section>
    <section aria-labelledby="closes-title">
      <h2 id="closes-title">Closes by reason, last 10 minutes</h2>
      <figure>
        <svg id="closes-chart" class="chart" viewBox="0 0 420 180" role="img"
          aria-labelledby="closes-title closes-desc"></svg>
        <figcaption id="closes-desc">No closes yet.</figcaption>
      </figure>
      <table id="closes-table" class="small">
        <caption class="visually-hidden">Totals by reason over the last 15 minutes</caption>
        <thead><tr><th scope="col">Reason</th><th scope="col" class="num">Links lost</th>
          <th scope="col" class="num">Connections closed</th><th scope="col" class="num">Handshakes refused</th></tr></thead>
        <tbody id="closes-rows"></tbody>
      </table>
    </section>
  </div>

  <section aria-labelledby="events-title">
    <h2 id="events-title">State changes</h2>
    <ol id="events" class="events" role="log" aria-live="polite" aria-relevant="additions"></ol>
  </section>
</main>
</body>
</html>
`;
