// The live topology view: a vhost drawn in layered columns,
//   publishers | exchanges | queues | consumers
// with bindings (edge labels = binding keys) and edge widths/labels showing
// live message rates, refreshed every second from the Warren-only
// /api/warren/topology/VHOST (one request: exchanges, bindings, queues,
// consumers, publishers when the broker lists them).
//
// Scale: an exchange's queues are grouped under it; a group of more than
// `threshold` queues is drawn as one node (click to expand), and past
// MAX_QUEUE_NODES every group collapses. Zoom (wheel, buttons) and pan
// (drag) act on the SVG's viewport; a click opens the object's page.
import { api, enc, maybe } from '../api.js';
import { app } from '../app.js';
import { h, clear, esc, fmtNum, fmtRate, rate, hasStats, link, section, errText } from '../util.js';

const NODE_W = 190, NODE_H = 44, VGAP = 12, GROUP_GAP = 18, COL_GAP = 190, PAD = 30, HEAD = 34;
const MAX_QUEUE_NODES = 300;
const COLORS = { publisher: '#8e44ad', exchange: '#1a73e8', queue: '#e8710a', group: '#e8710a', consumer: '#188038' };

export async function render(ctx, main, vhostParam) {
  const vhost = vhostParam || app.vhost || (app.vhosts.includes('/') ? '/' : app.vhosts[0] || '/');
  const state = {
    expanded: new Set(), collapsed: new Set(), threshold: 8, filter: '', showSystem: false,
    view: { x: 0, y: 10, k: 1 }, fitted: false, data: null, hasRates: false,
  };
  const vhostSel = h('select', { id: 'topology-vhost', onchange: () => { location.hash = link.topology(vhostSel.value); } },
    app.vhosts.map((v) => h('option', { value: v, selected: v === vhost }, v)));
  const filter = h('input', { type: 'search', placeholder: 'Filter queues / exchanges', class: 'filter', oninput: () => { state.filter = filter.value.toLowerCase(); draw(); } });
  const threshold = h('input', { type: 'number', min: 1, value: state.threshold, class: 'narrow', title: 'Collapse an exchange\'s queues into one node beyond this many', onchange: () => { state.threshold = Math.max(1, +threshold.value || 8); state.expanded.clear(); state.collapsed.clear(); draw(); } });
  const system = h('input', { type: 'checkbox', onchange: () => { state.showSystem = system.checked; draw(); } });
  const status = h('span', { class: 'muted', id: 'topology-status' }, 'loading…');
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.id = 'topology';
  svg.setAttribute('class', 'topology');
  svg.innerHTML = `<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#9aa0a6"/></marker></defs><g class="viewport"></g>`;
  const viewport = svg.querySelector('.viewport');
  const btn = (label, title, fn) => h('button', { class: 'small', title, onclick: fn }, label);
  main.append(
    h('div', { class: 'topo-head' },
      h('h1', {}, 'Topology'),
      h('label', {}, 'Virtual host ', vhostSel), filter,
      h('label', { class: 'check', title: 'Collapse groups larger than this' }, 'Group above ', threshold, ' queues'),
      h('label', { class: 'check' }, system, 'System exchanges'),
      h('span', { class: 'grow' }),
      btn('−', 'Zoom out', () => zoom(0.8)), btn('+', 'Zoom in', () => zoom(1.25)), btn('Fit', 'Fit to window', () => { fit(); apply(); }), btn('1:1', 'Actual size', () => { state.view = { x: 0, y: 10, k: 1 }; apply(); })),
    h('div', { class: 'topo-wrap' }, svg, h('div', { class: 'topo-legend' },
      legendItem('publisher', 'Publishers'), legendItem('exchange', 'Exchanges'), legendItem('queue', 'Queues'), legendItem('consumer', 'Consumers'),
      h('span', { class: 'muted' }, 'Edge width and labels: messages/s · drag to pan, wheel to zoom, click to open'), status)),
  );

  function apply() { viewport.setAttribute('transform', `translate(${state.view.x},${state.view.y}) scale(${state.view.k})`); }
  function zoom(f, cx, cy) {
    const r = svg.getBoundingClientRect();
    cx = cx ?? r.width / 2; cy = cy ?? r.height / 2;
    const k = Math.min(4, Math.max(0.05, state.view.k * f));
    state.view.x = cx - ((cx - state.view.x) * k) / state.view.k;
    state.view.y = cy - ((cy - state.view.y) * k) / state.view.k;
    state.view.k = k;
    apply();
  }
  function fit() {
    const size = state.size;
    const r = svg.getBoundingClientRect();
    if (!size || !r.width) return;
    const k = Math.min(1.2, (r.width - 2 * PAD) / size.w, (r.height - 20) / size.h);
    state.view = { k, x: Math.max(0, (r.width - size.w * k) / 2), y: 10 };
  }

  // Pan with drag; a press that did not move is a click.
  let drag = null;
  svg.addEventListener('pointerdown', (e) => { drag = { x: e.clientX, y: e.clientY, vx: state.view.x, vy: state.view.y, moved: false }; svg.setPointerCapture(e.pointerId); });
  svg.addEventListener('pointermove', (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 4) drag.moved = true;
    if (drag.moved) { state.view.x = drag.vx + dx; state.view.y = drag.vy + dy; apply(); svg.classList.add('panning'); }
  });
  svg.addEventListener('pointerup', (e) => {
    const d = drag; drag = null; svg.classList.remove('panning');
    if (!d || d.moved) return;
    const target = document.elementFromPoint(e.clientX, e.clientY);
    const node = target && target.closest('[data-toggle],[data-href]');
    if (!node) return;
    if (node.dataset.toggle) {
      const id = node.dataset.toggle;
      if (node.dataset.kind === 'group') { state.expanded.add(id); state.collapsed.delete(id); } else { state.collapsed.add(id); state.expanded.delete(id); }
      draw();
    } else location.hash = node.dataset.href;
  });
  svg.addEventListener('wheel', (e) => {
    e.preventDefault();
    const r = svg.getBoundingClientRect();
    zoom(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });

  function draw() {
    if (!state.data) return;
    const g = layout(state.data, state, vhost);
    state.size = g.size;
    viewport.innerHTML = renderGraph(g, state);
    if (!state.fitted) { state.fitted = true; fit(); }
    apply();
    const c = g.counts;
    status.textContent = `${c.exchanges} exchanges · ${c.queues} queues${c.groups ? ` (${c.groups} groups)` : ''} · ${c.consumers} consumers${c.publishers ? ` · ${c.publishers} publishers` : ''}${state.hasRates ? '' : ' · no rates reported by this broker'} · ${new Date().toLocaleTimeString('en-GB')}`;
  }

  // Consumers and publishers from the standard listings when the snapshot
  // lacks them (null: that listing is missing on this broker, stop asking).
  const apis = { consumers: true, channels: true };
  ctx.every(1000, async () => {
    let data;
    try {
      data = await api(`/warren/topology/${enc(vhost)}`);
    } catch (e) { status.textContent = errText(e); return; }
    if (!(data.consumers || []).length && apis.consumers && data.queues.some((q) => q.consumers)) {
      const list = await maybe(`/consumers/${enc(vhost)}`).catch(() => null);
      if (list === null) apis.consumers = false; else data.consumers = list;
    }
    if (!data.publishers && apis.channels) {
      const list = await maybe('/channels').catch(() => null);
      if (list === null) apis.channels = false;
      else data.publishers = publishersOf(list.items || list, vhost, data.exchanges, data.bindings || []);
    }
    state.data = data;
    state.hasRates = state.data.queues.some(hasStats) || state.data.exchanges.some(hasStats);
    draw();
  });
  const onResize = () => draw();
  window.addEventListener('resize', onResize);
  ctx.onLeave.push(() => window.removeEventListener('resize', onResize));
}

// Channels that publish, one node per connection. Their exchanges come from
// RabbitMQ's per-channel `publishes` when present, else from the only
// exchange with incoming traffic (unknown when several have some).
function publishersOf(channels, vhost, exchanges, bindings) {
  // Exchanges fed by other exchanges are not where publishers publish.
  const fedByExchange = new Set(bindings.filter((b) => b.destination_type === 'exchange').map((b) => b.destination));
  const busy = exchanges.filter((e) => (rate(e, 'publish_in') || 0) > 0 && !fedByExchange.has(e.name)).map((e) => e.name);
  const per = new Map();
  for (const c of channels) {
    if (c.vhost !== undefined && c.vhost !== vhost) continue;
    const r = rate(c, 'publish');
    if (!(r > 0) && !(c.message_stats && c.message_stats.publish > 0)) continue;
    const conn = c.connection_details || {};
    const key = conn.name || c.name;
    if (!per.has(key)) per.set(key, { name: key, connection_name: conn.name || c.name, peer_host: conn.peer_host, message_stats: { publish: 0, publish_details: { rate: 0 } }, targets: new Map() });
    const p = per.get(key);
    p.message_stats.publish += (c.message_stats && c.message_stats.publish) || 0;
    p.message_stats.publish_details.rate += r || 0;
    if (Array.isArray(c.publishes)) {
      for (const x of c.publishes) {
        const name = x.exchange && (x.exchange.name ?? x.exchange);
        const xr = x.stats && x.stats.publish_details ? x.stats.publish_details.rate : undefined;
        p.targets.set(name, (p.targets.get(name) || 0) + (xr || 0));
      }
    } else if (busy.length === 1) p.targets.set(busy[0], undefined);
  }
  return [...per.values()].map((p) => ({ ...p, exchanges: [...p.targets].map(([name, r]) => ({ name, rate: r })) }));
}

function legendItem(kind, label) {
  return h('span', { class: 'legend-item' }, h('i', { style: `background:${COLORS[kind]}` }), label);
}

const SYSTEM = /^amq\./;

// Build the layered graph: nodes with x/y, edges with rates and labels.
export function layout(data, state, vhost) {
  const filter = state.filter;
  const bindings = data.bindings || [];
  const boundFrom = new Map(); // exchange -> bindings
  const boundTo = new Map(); // queue -> bindings
  const exchangeIn = new Set();
  for (const b of bindings) {
    if (!boundFrom.has(b.source)) boundFrom.set(b.source, []);
    boundFrom.get(b.source).push(b);
    if (b.destination_type === 'queue') {
      if (!boundTo.has(b.destination)) boundTo.set(b.destination, []);
      boundTo.get(b.destination).push(b);
    } else exchangeIn.add(b.destination);
  }
  const queues = data.queues.filter((q) => !filter || q.name.toLowerCase().includes(filter) || (boundTo.get(q.name) || []).some((b) => b.source.toLowerCase().includes(filter)));
  const queueSet = new Set(queues.map((q) => q.name));
  const exOrder = [];
  const exByName = new Map(data.exchanges.map((e) => [e.name, e]));
  for (const e of data.exchanges) {
    if (e.name === '') continue;
    const out = boundFrom.get(e.name) || [];
    const used = out.length || exchangeIn.has(e.name) || (rate(e, 'publish_in') || 0) > 0;
    if (!state.showSystem && SYSTEM.test(e.name) && !used) continue;
    if (!state.showSystem && !used && !SYSTEM.test(e.name) && filter && !e.name.toLowerCase().includes(filter)) continue;
    if (filter && !e.name.toLowerCase().includes(filter) && !out.some((b) => queueSet.has(b.destination))) continue;
    exOrder.push(e);
  }
  const exVisible = new Set(exOrder.map((e) => e.name));
  // Each queue sits under its first visible binding's exchange (its group);
  // queues with none are under the default exchange.
  const groups = new Map(exOrder.map((e) => [e.name, []]));
  const unbound = [];
  for (const q of queues) {
    const b = (boundTo.get(q.name) || []).find((x) => exVisible.has(x.source));
    if (b) groups.get(b.source).push(q); else unbound.push(q);
  }
  const DEFAULT = '\u0000default';
  if (unbound.length) {
    const d = exByName.get('') || { name: '', type: 'direct' };
    exOrder.push({ ...d, name: DEFAULT, isDefault: true });
    groups.set(DEFAULT, unbound);
  }
  const total = queues.length;
  const nodes = [], edges = [];
  const byId = new Map();
  const add = (n) => { nodes.push(n); byId.set(n.id, n); return n; };
  const queueNode = new Map(); // queue name -> node id (its own or its group's)
  const exId = (name) => `exchange:${name}`;

  // Column 2: queues (grouped), in exchange order.
  let y = HEAD;
  let groupsDrawn = 0;
  const exDesired = new Map();
  for (const e of exOrder) {
    const qs = groups.get(e.name) || [];
    if (!qs.length) continue;
    const gid = `group:${e.name}`;
    const collapse = !state.expanded.has(gid) && (qs.length > state.threshold || (total > MAX_QUEUE_NODES && qs.length > 1) || state.collapsed.has(gid));
    const top = y;
    if (collapse) {
      groupsDrawn++;
      const agg = aggregate(qs);
      add({ id: gid, kind: 'group', col: 2, y, exchange: e.name, queues: qs, title: `${fmtNum(qs.length)} queues`, sub: `${fmtNum(agg.messages)} msgs · ${fmtNum(agg.consumers)} consumers`, toggle: gid, agg, tip: `${qs.length} queues bound to ${label(e)} — click to expand` });
      qs.forEach((q) => queueNode.set(q.name, gid));
      y += NODE_H + VGAP;
    } else {
      for (const q of qs) {
        const id = `queue:${q.name}`;
        add({ id, kind: 'queue', col: 2, y, q, name: q.name, title: q.name, sub: `${fmtNum(q.messages)} msgs · ${fmtNum(q.messages_ready)} ready · ${fmtNum(q.messages_unacknowledged)} unacked`, href: link.queue(vhost, q.name), group: qs.length > 1 ? gid : null });
        queueNode.set(q.name, id);
        y += NODE_H + VGAP;
      }
    }
    exDesired.set(e.name, (top + y - VGAP - NODE_H) / 2);
    y += GROUP_GAP;
  }

  // Column 1: exchanges, next to their queue groups.
  let ey = HEAD;
  for (const e of exOrder) {
    const want = exDesired.get(e.name) ?? ey;
    const yy = Math.max(want, ey);
    const inRate = rate(e, 'publish_in');
    add({ id: exId(e.name), kind: 'exchange', col: 1, y: yy, name: e.isDefault ? '' : e.name, title: label(e), sub: `${e.type}${inRate !== undefined ? ` · in ${fmtRate(inRate)}` : ''}`, href: link.exchange(vhost, e.isDefault ? '' : e.name), e });
    ey = yy + NODE_H + VGAP;
  }

  // Edges exchange -> queue / group (merged per pair), exchange -> exchange.
  const pair = new Map();
  const hasRates = state.hasRates;
  for (const e of exOrder) {
    const list = e.isDefault ? (groups.get(DEFAULT) || []).map((q) => ({ source: DEFAULT, destination: q.name, destination_type: 'queue', routing_key: q.name, implicit: true })) : (boundFrom.get(e.name) || []);
    for (const b of list) {
      let to;
      if (b.destination_type === 'queue') to = queueNode.get(b.destination);
      else to = exVisible.has(b.destination) ? exId(b.destination) : null;
      if (!to) continue;
      const key = `${exId(e.name)}>${to}`;
      let ed = pair.get(key);
      if (!ed) { ed = { from: exId(e.name), to, keys: [], rate: 0, known: false, kind: b.destination_type === 'queue' ? 'binding' : 'e2e', implicit: !!b.implicit, queues: new Set() }; pair.set(key, ed); edges.push(ed); }
      if (!ed.keys.includes(b.routing_key)) ed.keys.push(b.routing_key);
      if (b.destination_type === 'queue' && !ed.queues.has(b.destination)) {
        ed.queues.add(b.destination);
        const q = byQueue(data, b.destination);
        const r = rate(q, 'publish');
        if (r !== undefined) { ed.rate += r / Math.max(1, (boundTo.get(b.destination) || []).length || 1); ed.known = true; }
      } else if (b.destination_type === 'exchange') {
        const r = rate(exByName.get(b.destination), 'publish_in');
        if (r !== undefined) { ed.rate = r; ed.known = true; }
      }
    }
  }

  // Column 3: consumers, grouped per channel when the broker lists them,
  // else one node per queue with its consumer count.
  const consumerNodes = [];
  const cons = data.consumers || [];
  if (cons.length) {
    const per = new Map();
    for (const c of cons) {
      const qn = c.queue && (c.queue.name ?? c.queue);
      const from = queueNode.get(qn);
      if (!from) continue;
      const ch = c.channel_details || {};
      const id = `consumer:${ch.name || ch.connection_name || c.consumer_tag}`;
      if (!per.has(id)) per.set(id, { id, kind: 'consumer', col: 3, ch, tags: [], queues: new Set(), froms: new Set() });
      const n = per.get(id);
      n.tags.push(c.consumer_tag); n.queues.add(qn); n.froms.add(from);
    }
    for (const n of per.values()) {
      n.title = n.ch.connection_name || n.ch.name || n.tags[0];
      n.name = n.ch.name || n.tags[0];
      n.sub = `${n.tags.length === 1 ? n.tags[0] : `${n.tags.length} consumers`}${n.ch.peer_host ? ` · ${n.ch.peer_host}:${n.ch.peer_port}` : ''}`;
      n.href = n.ch.name ? link.channel(n.ch.name) : n.ch.connection_name ? link.connection(n.ch.connection_name) : undefined;
      n.tip = `${n.ch.name || ''}\n${n.tags.join('\n')}`;
      consumerNodes.push(n);
    }
  } else {
    const perFrom = new Map();
    for (const q of queues) {
      if (!q.consumers) continue;
      const from = queueNode.get(q.name);
      perFrom.set(from, (perFrom.get(from) || 0) + q.consumers);
    }
    for (const [from, n] of perFrom) {
      const src = byId.get(from);
      consumerNodes.push({ id: `consumer:${from}`, kind: 'consumer', col: 3, title: `${fmtNum(n)} consumer${n === 1 ? '' : 's'}`, name: src.name || src.title, sub: src.kind === 'group' ? `on ${src.title}` : `on ${src.title}`, froms: new Set([from]), href: src.href, queues: new Set(src.kind === 'group' ? src.queues.map((q) => q.name) : [src.name]) });
    }
  }
  // Deliveries out of each queue node are shared by its consumer nodes.
  const outCount = new Map();
  for (const c of consumerNodes) for (const f of c.froms) outCount.set(f, (outCount.get(f) || 0) + 1);
  for (const c of consumerNodes) {
    c.want = mean([...c.froms].map((f) => byId.get(f).y));
    for (const f of c.froms) {
      const src = byId.get(f);
      const r = src.kind === 'group' ? src.agg.deliver : rate(src.q, 'deliver_get');
      edges.push({ from: f, to: c.id, kind: 'deliver', rate: r !== undefined ? r / outCount.get(f) : 0, known: r !== undefined, keys: [] });
    }
  }
  place(consumerNodes).forEach(add);

  // Column 0: publishers, when the broker lists them.
  const pubs = [];
  for (const p of data.publishers || []) {
    const id = `publisher:${p.name}`;
    const targets = (p.exchanges || []).map((x) => (typeof x === 'string' ? { name: x } : x)).filter((x) => byId.has(exId(x.name === '' ? DEFAULT : x.name)));
    const n = { id, kind: 'publisher', col: 0, name: p.name, title: p.connection_name || p.name, sub: `publish ${fmtRate(rate(p, 'publish'))}${p.peer_host ? ` · ${p.peer_host}` : ''}`, tip: p.name, href: link.connection(p.connection_name || p.name) };
    n.want = targets.length ? mean(targets.map((x) => byId.get(exId(x.name === '' ? DEFAULT : x.name)).y)) : HEAD;
    pubs.push(n);
    for (const x of targets) {
      const r = x.rate !== undefined ? x.rate : targets.length === 1 ? rate(p, 'publish') : undefined;
      edges.push({ from: id, to: exId(x.name === '' ? DEFAULT : x.name), kind: 'publish', rate: r || 0, known: r !== undefined, keys: [] });
    }
  }
  place(pubs).forEach(add);
  // Exchanges with traffic but no known publisher: an inbound stub shows their publish rate.
  const fed = new Set(edges.filter((e) => e.kind === 'publish' || e.kind === 'e2e').map((e) => e.to));
  for (const e of exOrder) {
    const r = rate(e, 'publish_in');
    if (r && !fed.has(exId(e.name))) edges.push({ from: null, to: exId(e.name), kind: 'inflow', rate: r, known: true, keys: [] });
  }

  // Columns left to right; the publishers' column only when there are some.
  // Room on the left for the inflow stubs of exchanges without known publishers.
  const xOf = [];
  let x = 90;
  for (let i = 0; i < 4; i++) {
    xOf[i] = x;
    if (i > 0 || pubs.length) x += NODE_W + COL_GAP;
  }
  for (const n of nodes) n.x = xOf[n.col];
  const maxY = Math.max(HEAD, ...nodes.map((n) => n.y + NODE_H));
  const maxX = Math.max(...nodes.map((n) => n.x + NODE_W), xOf[2] + NODE_W);
  return {
    nodes, edges, byId, xOf, cols: { publishers: pubs.length > 0, consumers: consumerNodes.length > 0 },
    size: { w: maxX + 20, h: maxY + 20 },
    counts: { exchanges: exOrder.length, queues: queues.length, groups: groupsDrawn, consumers: cons.length || queues.reduce((s, q) => s + (q.consumers || 0), 0), publishers: pubs.length },
    hasRates,
  };
}

function byQueue(data, name) {
  if (!data._q) data._q = new Map(data.queues.map((q) => [q.name, q]));
  return data._q.get(name);
}

function aggregate(qs) {
  const a = { messages: 0, consumers: 0, publish: undefined, deliver: undefined };
  for (const q of qs) {
    a.messages += q.messages || 0;
    a.consumers += q.consumers || 0;
    const p = rate(q, 'publish'), d = rate(q, 'deliver_get');
    if (p !== undefined) a.publish = (a.publish || 0) + p;
    if (d !== undefined) a.deliver = (a.deliver || 0) + d;
  }
  return a;
}

function label(e) { return e.isDefault ? '(AMQP default)' : e.name; }
function mean(a) { return a.length ? a.reduce((s, v) => s + v, 0) / a.length : HEAD; }

// Stack nodes near their wanted y without overlaps, in wanted order.
function place(ns) {
  ns.sort((a, b) => a.want - b.want);
  let y = HEAD;
  for (const n of ns) { n.y = Math.max(n.want, y); y = n.y + NODE_H + VGAP; }
  return ns;
}

function width(r, known) {
  if (!known || !r) return 1.5;
  return Math.min(12, 2 + Math.log2(1 + r) * 1.6);
}

function trunc(s, n) { s = String(s); return s.length > n ? s.slice(0, n - 1) + '…' : s; }

function renderGraph(g, state) {
  let out = '';
  const heads = [['Publishers', 0, g.cols.publishers], ['Exchanges', 1, true], ['Queues', 2, true], ['Consumers', 3, g.cols.consumers]];
  for (const [t, c, on] of heads) if (on) out += `<text class="col-head" x="${g.xOf[c] + NODE_W / 2}" y="16" text-anchor="middle">${t}</text>`;
  let labels = '';
  let edgesSvg = '';
  for (const e of g.edges) {
    const b = g.byId.get(e.to);
    if (!b) continue;
    const a = e.from ? g.byId.get(e.from) : null;
    let x1, y1;
    const x2 = b.x, y2 = b.y + NODE_H / 2;
    if (a) {
      if (a.col === b.col) { x1 = a.x + NODE_W; y1 = a.y + NODE_H / 2; } else { x1 = a.x + NODE_W; y1 = a.y + NODE_H / 2; }
    } else { x1 = b.x - 70; y1 = y2; }
    let d;
    if (a && a.col === b.col) {
      // exchange -> exchange in one column: a loop on the right side.
      const bx = Math.max(x1, b.x + NODE_W) + 50;
      d = `M${x1},${y1} C${bx},${y1} ${bx},${b.y + NODE_H / 2} ${b.x + NODE_W},${b.y + NODE_H / 2}`;
    } else {
      const mx = (x1 + x2) / 2;
      d = `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 - 2},${y2}`;
    }
    const w = width(e.rate, e.known);
    const cls = `edge ${e.kind}${e.implicit ? ' implicit' : ''}`;
    edgesSvg += `<path class="${cls}" d="${d}" stroke-width="${w.toFixed(1)}" data-from="${esc(e.from || '')}" data-to="${esc(e.to)}" marker-end="url(#arrow)"/>`;
    if (e.known && e.rate > 0) {
      const dur = Math.max(0.25, 2.5 / Math.log2(2 + e.rate)).toFixed(2);
      edgesSvg += `<path class="flow" d="${d}" stroke-width="${Math.max(1.2, w / 2.5).toFixed(1)}" style="animation-duration:${dur}s"/>`;
    }
    // Label: binding key(s) and rate, near the target end of the edge.
    const keyText = e.keys.length ? (e.kind === 'e2e' || e.kind === 'binding' ? e.keys.filter((k) => k !== '').slice(0, 2).join(', ') + (e.keys.length > 2 ? ` +${e.keys.length - 2}` : '') : '') : '';
    const rateText = e.known ? fmtRate(e.rate) : '';
    const text = e.implicit ? rateText : [keyText && trunc(keyText, 22), rateText].filter(Boolean).join(' · ');
    if (text) {
      const t = a && a.col === b.col ? 0.5 : (e.kind === 'binding' ? 0.62 : 0.5);
      const lx = a && a.col === b.col ? Math.max(x1, b.x + NODE_W) + 40 : x1 + (x2 - x1) * t;
      const ly = a && a.col === b.col ? (y1 + y2) / 2 : bezierY(y1, y2, t);
      const tw = text.length * 6.3 + 10;
      labels += `<g class="edge-label ${e.kind}" transform="translate(${lx.toFixed(1)},${ly.toFixed(1)})"><rect x="${(-tw / 2).toFixed(1)}" y="-9" width="${tw.toFixed(1)}" height="17" rx="8"/><text text-anchor="middle" y="4">${esc(text)}</text></g>`;
    }
  }
  out += `<g class="edges">${edgesSvg}</g><g class="labels">${labels}</g><g class="nodes">`;
  for (const n of g.nodes) {
    const color = COLORS[n.kind];
    const attrs = [`class="node ${n.kind}"`, `transform="translate(${n.x},${n.y})"`, `data-kind="${n.kind}"`, `data-id="${esc(n.id)}"`];
    if (n.name !== undefined) attrs.push(`data-name="${esc(n.name)}"`);
    if (n.toggle) attrs.push(`data-toggle="${esc(n.toggle)}"`);
    else if (n.href) attrs.push(`data-href="${esc(n.href)}"`);
    const tip = n.tip || `${n.title}\n${n.sub}`;
    let extra = '';
    if (n.kind === 'queue' && n.q) {
      const m = n.q.messages || 0;
      const fill = m ? Math.min(1, 0.15 + Math.log10(1 + m) / 5) : 0;
      extra = `<rect class="depth" x="6" y="${NODE_H - 4}" width="${((NODE_W - 8) * fill).toFixed(1)}" height="3" rx="1.5"/>`;
    }
    if (n.kind === 'group') extra = `<rect class="stack" x="4" y="-4" width="${NODE_W}" height="${NODE_H}" rx="7"/>`;
    out += `<g ${attrs.join(' ')}><title>${esc(tip)}</title>${n.kind === 'group' ? extra : ''}<rect class="box" width="${NODE_W}" height="${NODE_H}" rx="7"/><rect class="bar" width="6" height="${NODE_H}" rx="3" fill="${color}"/>`
      + `<text class="title" x="14" y="18">${esc(trunc(n.title, 24))}</text><text class="sub" x="14" y="34">${esc(trunc(n.sub || '', 32))}</text>${n.kind === 'queue' ? extra : ''}`
      + (n.group && state ? `<g class="collapse" data-toggle="${esc(n.group)}" data-kind="queue-in-group"><title>Collapse group</title><circle cx="${NODE_W - 12}" cy="12" r="7"/><text x="${NODE_W - 12}" y="16" text-anchor="middle">−</text></g>` : '')
      + `</g>`;
  }
  out += '</g>';
  return out;
}

function bezierY(y1, y2, t) {
  // y of the cubic (y1, y1, y2, y2) at t.
  const u = 1 - t;
  return u * u * u * y1 + 3 * u * u * t * y1 + 3 * u * t * t * y2 + t * t * t * y2;
}

export { section, clear };
