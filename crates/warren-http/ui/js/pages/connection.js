// One connection, as RabbitMQ's connection page: who and what it is (peer,
// protocol, client properties), data rates (chart, polled every 2 s), its
// channels, and closing it (with a reason the client sees).
import { api, enc } from '../api.js';
import { h, clear, section, kv, goneNotice, showGone, fmtNum, fmtRate, fmtBytes, rate, flash, errText, link } from '../util.js';
import { simpleTable } from '../table.js';
import { TimeChart } from '../chart.js';
import { propsView, fmtDate } from '../props.js';

const bytesRate = (v) => (v >= 1024 ? `${fmtBytes(v)}/s` : `${+v.toFixed(v < 10 ? 2 : 0)} B/s`);

export async function render(ctx, main, name) {
  const base = `/connections/${enc(name)}`;
  const chart = new TimeChart({ id: 'chart-connection-rates', rate: true, format: bytesRate, series: [{ label: 'From client' }, { label: 'To client' }] });
  const details = h('div', { id: 'connection-details' });
  const props = h('div', { id: 'client-properties' });
  const channels = h('div', { id: 'connection-channels' });
  const gone = goneNotice('connection-gone');
  const reason = h('input', { id: 'close-reason', name: 'reason', value: 'Closed via management plugin', 'aria-label': 'Reason' });
  const close = h('button', { id: 'close-connection', class: 'danger', onclick: () => closeIt() }, 'Force close');
  main.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/connections' }, 'Connections'), ' › '),
    h('h1', {}, 'Connection ', h('span', { class: 'obj-name', id: 'connection-name' }, name)),
    gone,
    h('div', { class: 'cols' }, section('Details', details), section('Data rates', chart.el)),
    section('Client properties', props),
    section('Channels', channels),
    section('Close this connection', h('div', { class: 'form inline' },
      h('label', { class: 'field' }, h('span', {}, 'Reason'), reason), h('div', { class: 'actions' }, close))),
  );

  async function closeIt() {
    if (!confirm(`Close connection ${name}?`)) return;
    try {
      await api(base, { method: 'DELETE', headers: { 'X-Reason': reason.value } });
      flash('Connection closed');
    } catch (e) { flash(errText(e), 'error'); }
  }

  let propsShown = false;
  ctx.every(2000, async () => {
    let c;
    try { c = await api(base); } catch (e) {
      if (e.status !== 404) throw e;
      showGone(gone, 'This connection is closed.');
      close.disabled = true;
      clear(channels, h('p', { class: 'muted' }, 'None.'));
      return;
    }
    const recv = c.recv_oct_details && c.recv_oct_details.rate;
    const send = c.send_oct_details && c.send_oct_details.rate;
    chart.push([recv, send]);
    const cp = c.client_properties || {};
    clear(details, kv([
      ['Virtual host', c.vhost],
      ['Username', c.user],
      ['Protocol', h('span', { id: 'connection-protocol' }, c.protocol)],
      ['State', c.state],
      ['Client', [cp.product, cp.version].filter(Boolean).join(' ') || '–'],
      c.user_provided_name && ['Connection name', c.user_provided_name],
      ['Peer', h('span', { id: 'connection-peer' }, `${c.peer_host}:${c.peer_port}`)],
      ['Listener', `${c.host}:${c.port}`],
      ['Connected at', fmtDate(c.connected_at)],
      c.auth_mechanism && ['Authentication', c.auth_mechanism],
      ['SSL / TLS', c.ssl ? `${c.ssl_protocol || 'yes'}` : 'no'],
      c.timeout !== undefined && ['Heartbeat', `${fmtNum(c.timeout)} s`],
      c.frame_max !== undefined && ['Frame max', `${fmtNum(c.frame_max)} bytes`],
      c.channel_max !== undefined && ['Channel limit', fmtNum(c.channel_max)],
      ['Received', h('span', { id: 'connection-recv' }, `${fmtBytes(c.recv_oct)}${recv !== undefined ? ` (${bytesRate(recv)})` : ''}`)],
      ['Sent', h('span', { id: 'connection-send' }, `${fmtBytes(c.send_oct)}${send !== undefined ? ` (${bytesRate(send)})` : ''}`)],
    ]));
    if (!propsShown) { clear(props, propsView(cp)); propsShown = true; }
    const list = await api(`${base}/channels`);
    clear(channels, channelTable(list));
  });
}

export function channelTable(list) {
  return simpleTable([
    { label: 'Channel', render: (ch) => h('a', { href: link.channel(ch.name) }, ch.name) },
    { label: 'Mode', render: mode },
    { label: 'State', key: 'state' },
    { label: 'Prefetch', key: 'prefetch_count', cls: 'num' },
    { label: 'Unacked', key: 'messages_unacknowledged', cls: 'num' },
    { label: 'Unconfirmed', key: 'messages_unconfirmed', cls: 'num' },
    { label: 'Consumers', key: 'consumer_count', cls: 'num' },
    { label: 'Publish', render: (ch) => fmtRate(rate(ch, 'publish')), cls: 'num' },
    { label: 'Deliver / get', render: (ch) => fmtRate(rate(ch, 'deliver_get')), cls: 'num' },
    { label: 'Ack', render: (ch) => fmtRate(rate(ch, 'ack')), cls: 'num' },
  ], list, 'No channels.');
}

export function mode(ch) {
  return [ch.confirm && 'confirm', ch.transactional && 'transactional'].filter(Boolean).join(', ') || '–';
}
