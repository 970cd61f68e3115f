/**
 * The dashboard's script: plain ES2017 for any current browser, no framework, no build.
 * It listens to /api/events (server-sent events) through EventSource, which reconnects
 * by itself: 'hello' brings the recent closes, 'snapshot' (every second) the table,
 * summary and RTT histogram, 'state' and 'close' each change as it happens. Rows are
 * keyed by connection id and updated in place, so focus and selection survive updates.
 *
 * Kept as a string (String.raw, so escapes reach the browser as written) because tsc
 * output must carry it; test/unit/observe.test.ts parses it to catch syntax errors.
 */

export const DASHBOARD_JS = String.raw`(function () {
  'use strict';

  var GLYPH = {
    connecting: '\u25CC',
    healthy: '\u25CF',
    suspect: '\u25B2',
    dead: '\u2716',
    disconnected: '\u25CB',
    closed: '\u25A0'
  };
  var REASON_COLOURS = {
    'heartbeat-timeout': '#b42318',
    'write-stall': '#9e165f',
    'keepalive-timeout': '#c11574',
    reset: '#c4320a',
    eof: '#475467',
    local: '#1849a9',
    remote: '#107569',
    'going-away': '#6941c6',
    'session-expired': '#93370d',
    superseded: '#344054',
    'protocol-error': '#7a2e0e',
    'handshake-timeout': '#3e4784',
    'auth-failed': '#a15c07',
    error: '#101828'
  };
  var FALLBACK_COLOURS = ['#026aa2', '#4e5ba6', '#85660d', '#0e7090', '#5925dc'];
  var SPARK_POINTS = 60;
  var KEEP_CLOSED_MS = 60000;
  var CHART_WINDOW_MS = 600000;
  var CHART_BUCKETS = 20;
  var MAX_EVENTS = 50;
  var SVG_NS = 'http://www.w3.org/2000/svg';
  var LOAD_VALUES = { normal: 0, warning: 1, danger: 2 };

  var rows = new Map();
  var closes = [];
  var sortKey = null;
  var sortDir = 1;
  var filterText = '';
  var lastSnapshot = null;

  function byId(id) { return document.getElementById(id); }
  function setText(el, text) { if (el.textContent !== text) el.textContent = text; }
  function svg(name, attrs) {
    var el = document.createElementNS(SVG_NS, name);
    for (var k in attrs) el.setAttribute(k, String(attrs[k]));
    return el;
  }
  function fmtMs(ms) {
    if (ms === null || ms === undefined) return '\u2013';
    if (ms < 1) return ms.toFixed(3) + ' ms';
    if (ms < 100) return ms.toFixed(1) + ' ms';
    if (ms < 10000) return Math.round(ms) + ' ms';
    return (ms / 1000).toFixed(1) + ' s';
  }
  function fmtAgo(ms) {
    if (ms === null || ms === undefined) return 'never';
    if (ms < 1000) return 'just now';
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 1 : 0) + ' s ago';
    if (ms < 3600000) return Math.floor(ms / 60000) + ' min ago';
    return Math.floor(ms / 3600000) + ' h ago';
  }
  function fmtInt(n) { return Number(n).toLocaleString('en'); }
  function fmtTime(at) {
    var d = new Date(at);
    function two(n) { return (n < 10 ? '0' : '') + n; }
    return two(d.getHours()) + ':' + two(d.getMinutes()) + ':' + two(d.getSeconds());
  }
  function colourFor(reason) {
    if (REASON_COLOURS[reason]) return REASON_COLOURS[reason];
    var h = 0;
    for (var i = 0; i < reason.length; i++) h = (h * 31 + reason.charCodeAt(i)) >>> 0;
    return FALLBACK_COLOURS[h % FALLBACK_COLOURS.length];
  }

  // ---- connections table -----------------------------------------------------------

  function badge(state) {
    var span = document.createElement('span');
    span.className = 'badge state-' + state;
    var glyph = document.createElement('span');
    glyph.setAttribute('aria-hidden', 'true');
    glyph.textContent = GLYPH[state] || '?';
    span.appendChild(glyph);
    span.appendChild(document.createTextNode(' ' + state.toUpperCase()));
    return span;
  }

  function createRow(id) {
    var tr = document.createElement('tr');
    tr.dataset.id = id;
    var names = ['id', 'remote', 'state', 'rtt', 'spark', 'heard', 'in', 'out', 'change'];
    var cells = {};
    names.forEach(function (name) {
      var td = document.createElement(name === 'id' ? 'th' : 'td');
      if (name === 'id') td.setAttribute('scope', 'row');
      if (name === 'rtt' || name === 'heard' || name === 'in' || name === 'out') td.className = 'num';
      td.dataset.col = name;
      tr.appendChild(td);
      cells[name] = td;
    });
    setText(cells.id, id);
    var spark = svg('svg', { class: 'spark', width: 90, height: 22, viewBox: '0 0 90 22', 'aria-hidden': 'true', focusable: 'false' });
    spark.appendChild(svg('line', { class: 'base', x1: 1, y1: 21, x2: 89, y2: 21 }));
    var line = svg('polyline', { points: '' });
    spark.appendChild(line);
    cells.spark.appendChild(spark);
    var row = { id: id, tr: tr, cells: cells, line: line, state: null, info: null, rtts: [], goneAt: null };
    rows.set(id, row);
    byId('conn-rows').appendChild(tr);
    return row;
  }

  function setState(row, state) {
    if (row.state === state) return;
    row.state = state;
    row.tr.dataset.state = state;
    row.cells.state.replaceChildren(badge(state));
  }

  function drawSpark(row) {
    var values = row.rtts.filter(function (v) { return v !== null; });
    if (values.length < 2) { row.line.setAttribute('points', ''); return; }
    var max = Math.max.apply(null, values) || 1;
    var step = 88 / (SPARK_POINTS - 1);
    var offset = SPARK_POINTS - row.rtts.length;
    var points = [];
    row.rtts.forEach(function (v, i) {
      if (v === null) return;
      points.push(((offset + i) * step + 1).toFixed(1) + ',' + (21 - (v / max) * 19).toFixed(1));
    });
    row.line.setAttribute('points', points.join(' '));
  }

  function updateRow(row, c) {
    row.info = c;
    row.goneAt = null;
    setText(row.cells.remote, c.remote || '\u2013');
    setState(row, c.state);
    setText(row.cells.rtt, fmtMs(c.rtt));
    setText(row.cells.heard, fmtAgo(c.lastHeardMsAgo));
    setText(row.cells.in, fmtInt(c.messagesIn));
    setText(row.cells.out, fmtInt(c.messagesOut));
    row.rtts.push(c.rtt);
    if (row.rtts.length > SPARK_POINTS) row.rtts.shift();
    drawSpark(row);
  }

  function markClosed(row, reason) {
    if (row.goneAt !== null) return;
    row.goneAt = Date.now();
    setState(row, 'closed');
    if (reason) setText(row.cells.change, 'closed: ' + reason);
  }

  var SORTERS = {
    id: function (r) { return [r.id.length, r.id]; },
    remote: function (r) { return [r.info && r.info.remote || '']; },
    state: function (r) { return [r.state || '']; },
    rtt: function (r) { return [r.info && r.info.rtt !== null ? r.info.rtt : Infinity]; },
    heard: function (r) { return [r.info && r.info.lastHeardMsAgo !== null ? r.info.lastHeardMsAgo : Infinity]; },
    in: function (r) { return [r.info ? r.info.messagesIn : 0]; },
    out: function (r) { return [r.info ? r.info.messagesOut : 0]; }
  };

  function compareKeys(a, b) {
    for (var i = 0; i < a.length; i++) {
      if (a[i] < b[i]) return -1;
      if (a[i] > b[i]) return 1;
    }
    return 0;
  }

  function order(serverOrder) {
    var list = Array.from(rows.values());
    var rank = new Map();
    serverOrder.forEach(function (id, i) { rank.set(id, i); });
    if (sortKey) {
      var key = SORTERS[sortKey];
      list.sort(function (a, b) { return sortDir * compareKeys(key(a), key(b)); });
    } else {
      list.sort(function (a, b) {
        var ra = rank.has(a.id) ? rank.get(a.id) : Infinity;
        var rb = rank.has(b.id) ? rank.get(b.id) : Infinity;
        return ra - rb || compareKeys(SORTERS.id(a), SORTERS.id(b));
      });
    }
    var body = byId('conn-rows');
    var current = Array.from(body.children);
    var same = current.length === list.length && list.every(function (r, i) { return current[i] === r.tr; });
    if (!same) list.forEach(function (r) { body.appendChild(r.tr); });
  }

  function applyFilter() {
    var shown = 0;
    rows.forEach(function (row) {
      var text = (row.id + ' ' + (row.info && row.info.remote || '') + ' ' + (row.state || '')).toLowerCase();
      var visible = filterText === '' || text.indexOf(filterText) !== -1;
      row.tr.hidden = !visible;
      if (visible) shown++;
    });
    byId('no-rows').hidden = rows.size > 0;
    var truncated = lastSnapshot ? lastSnapshot.truncated : 0;
    var count = shown === rows.size ? shown + ' shown' : shown + ' of ' + rows.size + ' shown';
    if (truncated > 0) count += ' (' + fmtInt(truncated) + ' healthier connections not listed)';
    setText(byId('row-count'), count);
  }

  // ---- summary ---------------------------------------------------------------------

  function renderSummary(snap) {
    var s = snap.server;
    setText(byId('server-address'), s.address || 'not listening');
    var ready = byId('server-ready');
    setText(ready, s.ready ? 'ready' : s.draining ? 'draining' : 'not ready');
    ready.className = 'pill ' + (s.ready ? 'ready' : 'not-ready');
    setText(byId('sum-total'), fmtInt(s.connections));
    ['healthy', 'suspect', 'dead', 'disconnected'].forEach(function (state) {
      setText(byId('sum-' + state), fmtInt(s.states[state] || 0));
    });
    var load = byId('load-level');
    setText(load, s.loadLevelName + ' (' + s.loadLevel + ')');
    load.className = s.loadLevel > 0 ? 'load-high' : '';
    setText(byId('loop-p99'), fmtMs(snap.eventLoop.p99 * 1000));
  }

  // ---- RTT chart -------------------------------------------------------------------

  function renderRtt(rtt) {
    var chart = byId('rtt-chart');
    var counts = rtt.counts;
    var labels = rtt.bucketsMs.map(function (b) { return '\u2264' + b; }).concat(['>' + rtt.bucketsMs[rtt.bucketsMs.length - 1]]);
    var total = counts.reduce(function (a, b) { return a + b; }, 0);
    var max = Math.max.apply(null, counts) || 1;
    var left = 30, bottom = 150, width = 385, height = 125;
    var bw = width / counts.length;
    var nodes = [svg('line', { class: 'axis', x1: left, y1: bottom, x2: left + width, y2: bottom })];
    counts.forEach(function (n, i) {
      var h = (n / max) * height;
      var x = left + i * bw;
      var bar = svg('rect', { class: 'bar', x: (x + 2).toFixed(1), y: (bottom - h).toFixed(1), width: (bw - 4).toFixed(1), height: h.toFixed(1) });
      var title = svg('title', {});
      title.textContent = labels[i] + ' ms: ' + n;
      bar.appendChild(title);
      nodes.push(bar);
      if (n > 0) {
        var t = svg('text', { x: (x + bw / 2).toFixed(1), y: (bottom - h - 4).toFixed(1), 'text-anchor': 'middle' });
        t.textContent = String(n);
        nodes.push(t);
      }
      if (i % 2 === 0 || counts.length <= 8) {
        var l = svg('text', { x: (x + bw / 2).toFixed(1), y: bottom + 14, 'text-anchor': 'middle' });
        l.textContent = labels[i];
        nodes.push(l);
      }
    });
    var unit = svg('text', { x: left + width, y: bottom + 28, 'text-anchor': 'end' });
    unit.textContent = 'smoothed RTT (ms)';
    nodes.push(unit);
    chart.replaceChildren.apply(chart, nodes);
    var desc;
    if (total === 0) desc = 'No RTT samples yet.';
    else {
      var half = total / 2, acc = 0, median = labels[0];
      for (var i = 0; i < counts.length; i++) { acc += counts[i]; if (acc >= half) { median = labels[i]; break; } }
      desc = total + (total === 1 ? ' connection' : ' connections') + ' with an RTT; the median is in the ' + median + ' ms bucket.';
    }
    setText(byId('rtt-desc'), desc);
  }

  // ---- closes chart ----------------------------------------------------------------

  function renderCloses() {
    var now = Date.now();
    var cutoff = now - CHART_WINDOW_MS;
    closes = closes.filter(function (c) { return c.at >= now - 900000; });
    var bucketMs = CHART_WINDOW_MS / CHART_BUCKETS;
    var buckets = [];
    for (var b = 0; b < CHART_BUCKETS; b++) buckets.push({});
    var totals = {};
    var reasons = [];
    var lastByConn = new Map();
    var charted = 0;
    closes.forEach(function (c) {
      var t = totals[c.reason];
      if (!t) { t = totals[c.reason] = { disconnect: 0, close: 0, rejected: 0 }; reasons.push(c.reason); }
      t[c.kind]++;
      // A connection that ends with the same reason its link just ended with is one event, not two.
      var previous = c.conn ? lastByConn.get(c.conn) : undefined;
      if (c.conn) lastByConn.set(c.conn, c);
      if (c.kind === 'close' && previous && previous.kind === 'disconnect' && previous.reason === c.reason) return;
      if (c.at < cutoff) return;
      charted++;
      var i = Math.min(CHART_BUCKETS - 1, Math.floor((c.at - cutoff) / bucketMs));
      buckets[i][c.reason] = (buckets[i][c.reason] || 0) + 1;
    });
    reasons.sort();
    var chart = byId('closes-chart');
    var left = 30, bottom = 140, width = 385, height = 120;
    var max = 1;
    buckets.forEach(function (bk) {
      var sum = 0;
      for (var r in bk) sum += bk[r];
      if (sum > max) max = sum;
    });
    var nodes = [svg('line', { class: 'axis', x1: left, y1: bottom, x2: left + width, y2: bottom })];
    var top = svg('text', { x: left - 4, y: bottom - height + 4, 'text-anchor': 'end' });
    top.textContent = String(max);
    nodes.push(top);
    var bw = width / CHART_BUCKETS;
    buckets.forEach(function (bk, i) {
      var y = bottom;
      reasons.forEach(function (reason) {
        var n = bk[reason] || 0;
        if (n === 0) return;
        var h = (n / max) * height;
        y -= h;
        var rect = svg('rect', { x: (left + i * bw + 1).toFixed(1), y: y.toFixed(1), width: (bw - 2).toFixed(1), height: h.toFixed(1), fill: colourFor(reason) });
        var title = svg('title', {});
        title.textContent = reason + ': ' + n;
        rect.appendChild(title);
        nodes.push(rect);
      });
    });
    var l0 = svg('text', { x: left, y: bottom + 14 });
    l0.textContent = '10 min ago';
    var l1 = svg('text', { x: left + width, y: bottom + 14, 'text-anchor': 'end' });
    l1.textContent = 'now';
    nodes.push(l0, l1);
    var ly = bottom + 32, lx = left;
    reasons.forEach(function (reason) {
      var sw = svg('rect', { x: lx, y: ly - 9, width: 10, height: 10, fill: colourFor(reason) });
      var t = svg('text', { x: lx + 14, y: ly });
      t.textContent = reason;
      nodes.push(sw, t);
      lx += 24 + reason.length * 6;
      if (lx > left + width - 80) { lx = left; ly += 14; }
    });
    chart.setAttribute('viewBox', '0 0 420 ' + (ly + 8));
    chart.replaceChildren.apply(chart, nodes);

    setText(byId('closes-desc'), charted === 0 ? 'No closes in the last 10 minutes.'
      : charted + (charted === 1 ? ' close' : ' closes') + ' (links lost, connections closed, handshakes refused) in the last 10 minutes, stacked by reason in 30-second bars; totals below.');
    var body = byId('closes-rows');
    var trs = reasons.map(function (reason) {
      var tr = document.createElement('tr');
      var th = document.createElement('th');
      th.setAttribute('scope', 'row');
      var sw = svg('svg', { width: 10, height: 10, class: 'swatch', 'aria-hidden': 'true', focusable: 'false' });
      sw.appendChild(svg('rect', { width: 10, height: 10, fill: colourFor(reason) }));
      th.appendChild(sw);
      th.appendChild(document.createTextNode(reason));
      tr.appendChild(th);
      ['disconnect', 'close', 'rejected'].forEach(function (kind) {
        var td = document.createElement('td');
        td.className = 'num';
        td.textContent = fmtInt(totals[reason][kind]);
        tr.appendChild(td);
      });
      return tr;
    });
    body.replaceChildren.apply(body, trs);
  }

  // ---- state-change log ------------------------------------------------------------

  function logEvent(at, text) {
    var list = byId('events');
    var li = document.createElement('li');
    var time = document.createElement('time');
    time.dateTime = new Date(at).toISOString();
    time.textContent = fmtTime(at);
    li.appendChild(time);
    li.appendChild(document.createTextNode(text));
    list.insertBefore(li, list.firstChild);
    while (list.children.length > MAX_EVENTS) list.removeChild(list.lastChild);
  }

  // ---- feed ------------------------------------------------------------------------

  function onSnapshot(snap) {
    lastSnapshot = snap;
    var seen = new Set();
    snap.connections.forEach(function (c) {
      seen.add(c.id);
      updateRow(rows.get(c.id) || createRow(c.id), c);
    });
    var now = Date.now();
    rows.forEach(function (row, id) {
      if (seen.has(id)) return;
      if (row.goneAt === null) {
        if (snap.truncated > 0 && row.state !== 'closed') { row.tr.remove(); rows.delete(id); return; }
        markClosed(row, null);
      } else if (now - row.goneAt > KEEP_CLOSED_MS) {
        row.tr.remove();
        rows.delete(id);
      }
    });
    order(snap.connections.map(function (c) { return c.id; }));
    applyFilter();
    renderSummary(snap);
    renderRtt(snap.rtt);
    renderCloses();
  }

  function onState(e) {
    var row = rows.get(e.conn) || createRow(e.conn);
    setState(row, e.to);
    setText(row.cells.change, e.from + ' \u2192 ' + e.to + ': ' + e.reason + ' (' + fmtTime(e.at) + ')');
    logEvent(e.at, e.conn + (e.remote ? ' (' + e.remote + ')' : '') + ' ' + e.from + ' \u2192 ' + e.to + ': ' + e.reason);
    applyFilter();
  }

  function onClose(c) {
    closes.push(c);
    if (c.kind === 'close' && c.conn) {
      var row = rows.get(c.conn);
      if (row) markClosed(row, c.reason);
      logEvent(c.at, c.conn + ' closed: ' + c.reason);
    } else if (c.kind === 'rejected') {
      logEvent(c.at, 'handshake from ' + (c.remote || 'unknown') + ' refused: ' + c.reason);
    }
    renderCloses();
  }

  function parse(handler) {
    return function (ev) {
      var data;
      try { data = JSON.parse(ev.data); } catch (err) { return; }
      handler(data);
    };
  }

  function connect() {
    var status = byId('feed-status');
    var source = new EventSource('api/events');
    source.addEventListener('open', function () { setText(status, 'Live'); });
    source.addEventListener('error', function () {
      setText(status, source.readyState === EventSource.CLOSED ? 'Live feed closed; reload the page' : 'Reconnecting to the live feed\u2026');
    });
    source.addEventListener('hello', parse(function (h) {
      closes = h.closes.slice();
      renderCloses();
    }));
    source.addEventListener('snapshot', parse(onSnapshot));
    source.addEventListener('state', parse(onState));
    source.addEventListener('close', parse(onClose));
    source.addEventListener('load', parse(function (e) {
      logEvent(e.at, 'load level ' + e.from + ' \u2192 ' + e.to);
      var load = byId('load-level');
      setText(load, e.to + ' (' + (LOAD_VALUES[e.to] !== undefined ? LOAD_VALUES[e.to] : '?') + ')');
    }));
  }

  function setupControls() {
    byId('filter').addEventListener('input', function (ev) {
      filterText = ev.target.value.trim().toLowerCase();
      applyFilter();
    });
    Array.prototype.forEach.call(document.querySelectorAll('th button[data-sort]'), function (button) {
      button.addEventListener('click', function () {
        var key = button.dataset.sort;
        if (sortKey === key) {
          if (sortDir === 1) sortDir = -1;
          else { sortKey = null; sortDir = 1; }
        } else { sortKey = key; sortDir = 1; }
        Array.prototype.forEach.call(document.querySelectorAll('th[aria-sort]'), function (th) {
          var b = th.querySelector('button');
          th.setAttribute('aria-sort', sortKey && b && b.dataset.sort === sortKey ? (sortDir === 1 ? 'ascending' : 'descending') : 'none');
        });
        order(lastSnapshot ? lastSnapshot.connections.map(function (c) { return c.id; }) : []);
      });
    });
  }

  setupControls();
  connect();
})();
`;
