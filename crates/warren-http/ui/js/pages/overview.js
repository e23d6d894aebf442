// Overview: queued messages and message rates (charts polled every 2 s),
// object totals, node, listeners and alarms (health checks).
import { api, maybe } from '../api.js';
import { h, clear, section, fmtNum, fmtRate, fmtBytes, rate, total, kv, errText } from '../util.js';
import { simpleTable } from '../table.js';
import { TimeChart, Deriv } from '../chart.js';

const RATES = [
  ['publish', 'Publish'],
  ['deliver_get', 'Deliver / get'],
  ['ack', 'Consumer ack'],
  ['confirm', 'Publisher confirm'],
  ['redeliver', 'Redelivered'],
  ['return_unroutable', 'Unroutable (return)'],
  ['drop_unroutable', 'Unroutable (drop)'],
];

// RabbitMQ's churn statistics: [field, label] of overview.churn_rates.
const CHURN = [
  ['connection_created', 'Connections created'], ['connection_closed', 'Connections closed'],
  ['channel_created', 'Channels created'], ['channel_closed', 'Channels closed'],
  ['queue_declared', 'Queues declared'], ['queue_created', 'Queues created'], ['queue_deleted', 'Queues deleted'],
];

export async function render(ctx, main) {
  const queued = new TimeChart({ id: 'chart-queued', series: [{ label: 'Ready' }, { label: 'Unacked' }, { label: 'Total' }] });
  const rates = new TimeChart({ id: 'chart-rates', rate: true, series: RATES.map(([, l]) => ({ label: l })) });
  const deriv = new Deriv();
  const totals = h('div', { class: 'totals', id: 'totals' });
  const node = h('div');
  const listeners = h('div');
  const alarms = h('div', { id: 'alarms' });
  const churn = h('div', { id: 'churn' });
  main.append(
    h('h1', {}, 'Overview'),
    totals,
    h('div', { class: 'cols' },
      section('Queued messages', queued.el),
      section('Message rates', rates.el)),
    h('div', { class: 'cols' }, section('Health', alarms), section('Node', node)),
    h('div', { class: 'cols' }, section('Listeners', listeners), section('Churn statistics', churn)),
  );

  ctx.every(2000, async () => {
    const o = await api('/overview');
    const q = o.queue_totals || {};
    queued.push([q.messages_ready, q.messages_unacknowledged, q.messages]);
    const ms = o.message_stats || {};
    if (Object.keys(ms).length) {
      const reported = RATES.map(([f]) => rate(o, f));
      // Totals without rates: derive rates from successive totals.
      const derived = deriv.next(RATES.map(([f]) => total(o, f)));
      rates.push(reported.map((r, i) => (r === undefined ? derived[i] : r)));
      rates.setNote(null);
    } else {
      rates.push([]);
      rates.setNote('This broker does not report message rates yet');
    }
    const t = o.object_totals || {};
    clear(totals,
      card('Messages', fmtNum(q.messages), `${fmtNum(q.messages_ready)} ready · ${fmtNum(q.messages_unacknowledged)} unacked`, 'messages'),
      card('Publish', fmtRate(rate(o, 'publish')), `deliver ${fmtRate(rate(o, 'deliver_get'))}`, 'publish'),
      card('Connections', fmtNum(t.connections), `${fmtNum(t.channels)} channels`, 'connections', '#/connections'),
      card('Exchanges', fmtNum(t.exchanges), '', 'exchanges', '#/exchanges'),
      card('Queues', fmtNum(t.queues), '', 'queues', '#/queues'),
      card('Consumers', fmtNum(t.consumers), '', 'consumers'),
    );
    const c = o.churn_rates;
    clear(churn, c ? simpleTable([
      { label: 'Event', key: 'label' }, { label: 'Total', render: (r) => fmtNum(c[r.f]), cls: 'num' },
      { label: 'Rate', render: (r) => fmtRate(c[`${r.f}_details`] && c[`${r.f}_details`].rate), cls: 'num' },
    ], CHURN.filter(([f]) => f in c).map(([f, label]) => ({ f, label }))) : h('p', { class: 'muted' }, 'This broker does not report churn yet.'));
    clear(listeners, simpleTable([
      { label: 'Protocol', key: 'protocol' },
      { label: 'Bound to', key: 'ip_address' },
      { label: 'Port', render: (l) => String(l.port), cls: 'num' },
    ], o.listeners));
  });

  ctx.every(5000, async () => {
    const checks = [];
    for (const [label, path] of [['Resource alarms', '/health/checks/alarms'], ['Virtual hosts', '/health/checks/virtual-hosts']]) {
      try {
        const r = await api(path);
        checks.push({ label, ok: r.status === 'ok', text: r.status === 'ok' ? 'OK' : JSON.stringify(r) });
      } catch (e) {
        const b = e.body || {};
        checks.push({ label, ok: false, text: b.reason || (b.alarms ? b.alarms.map((a) => a.resource).join(', ') : errText(e)) });
      }
    }
    clear(alarms, h('ul', { class: 'checks' }, checks.map((c) => h('li', { class: c.ok ? 'ok' : 'bad' }, h('i'), h('b', {}, c.label), ' ', c.text))));
    const nodes = await maybe('/nodes');
    const n = nodes && nodes[0];
    if (n) {
      clear(node, kv([
        ['Name', n.name],
        ['Uptime', n.uptime !== undefined ? fmtUptime(n.uptime) : '–'],
        ['Memory', n.mem_used !== undefined ? `${fmtBytes(n.mem_used)}${n.mem_limit ? ` of ${fmtBytes(n.mem_limit)} limit` : ''}` : '–'],
        ['Disk free', n.disk_free !== undefined ? `${fmtBytes(n.disk_free)}${n.disk_free_limit ? ` (limit ${fmtBytes(n.disk_free_limit)})` : ''}` : '–'],
        ['File descriptors', n.fd_used !== undefined ? `${fmtNum(n.fd_used)} / ${fmtNum(n.fd_total)}` : '–'],
        ['Alarms', n.mem_alarm || n.disk_free_alarm ? [n.mem_alarm && 'memory', n.disk_free_alarm && 'disk'].filter(Boolean).join(', ') : 'none'],
      ]));
    }
  });
}

function card(label, value, sub, id, href) {
  const inner = [h('div', { class: 'label' }, label), h('div', { class: 'value' }, value), h('div', { class: 'sub muted' }, sub)];
  return href ? h('a', { class: 'stat', id: `total-${id}`, href }, inner) : h('div', { class: 'stat', id: `total-${id}` }, inner);
}

function fmtUptime(ms) {
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s %= 86400;
  const hh = Math.floor(s / 3600); s %= 3600;
  const m = Math.floor(s / 60);
  return d ? `${d}d ${hh}h` : hh ? `${hh}h ${m}m` : `${m}m ${s % 60}s`;
}
