// One channel, as RabbitMQ's channel page: its connection, prefetch,
// unacked / unconfirmed / uncommitted counts, message rates (chart, polled
// every 2 s) and its consumers.
import { api, enc, maybe } from '../api.js';
import { h, clear, section, kv, goneNotice, showGone, fmtNum, rate, link } from '../util.js';
import { simpleTable } from '../table.js';
import { TimeChart } from '../chart.js';
import { mode } from './connection.js';

const RATES = [['publish', 'Publish'], ['confirm', 'Confirm'], ['deliver_get', 'Deliver / get'], ['ack', 'Ack'], ['redeliver', 'Redelivered']];

export async function render(ctx, main, name) {
  const base = `/channels/${enc(name)}`;
  const chart = new TimeChart({ id: 'chart-channel-rates', rate: true, series: RATES.map(([, label]) => ({ label })) });
  const details = h('div', { id: 'channel-details' });
  const consumers = h('div', { id: 'channel-consumers' });
  const gone = goneNotice('channel-gone');
  main.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/channels' }, 'Channels'), ' › '),
    h('h1', {}, 'Channel ', h('span', { class: 'obj-name', id: 'channel-name' }, name)),
    gone,
    h('div', { class: 'cols' }, section('Details', details), section('Message rates', chart.el)),
    section('Consumers', consumers),
  );

  ctx.every(2000, async () => {
    let c;
    try { c = await api(base); } catch (e) {
      if (e.status !== 404) throw e;
      showGone(gone, 'This channel is closed.');
      return;
    }
    chart.push(RATES.map(([f]) => rate(c, f)));
    const conn = c.connection_details || {};
    clear(details, kv([
      ['Connection', conn.name ? h('a', { href: link.connection(conn.name), id: 'channel-connection' }, conn.name) : '–'],
      ['Number', fmtNum(c.number)],
      ['Virtual host', c.vhost],
      ['Username', c.user],
      ['Mode', mode(c)],
      ['State', c.state],
      ['Prefetch count', h('span', { id: 'channel-prefetch' }, fmtNum(c.prefetch_count))],
      ['Global prefetch count', fmtNum(c.global_prefetch_count)],
      ['Messages unacknowledged', h('span', { id: 'channel-unacked' }, fmtNum(c.messages_unacknowledged))],
      ['Messages unconfirmed', fmtNum(c.messages_unconfirmed)],
      ['Messages uncommitted', fmtNum(c.messages_uncommitted)],
      ['Acks uncommitted', fmtNum(c.acks_uncommitted)],
    ]));
    // RabbitMQ's channel has consumer_details; else /api/consumers/V, filtered.
    let list = c.consumer_details;
    if (!list) {
      const all = await maybe(`/consumers/${enc(c.vhost)}`);
      list = (all || []).filter((x) => x.channel_details && x.channel_details.name === name);
    }
    clear(consumers, simpleTable([
      { label: 'Consumer tag', key: 'consumer_tag' },
      { label: 'Queue', render: (x) => (x.queue ? h('a', { href: link.queue(x.queue.vhost || c.vhost, x.queue.name) }, x.queue.name) : '–') },
      { label: 'Ack required', key: 'ack_required' },
      { label: 'Exclusive', key: 'exclusive' },
      { label: 'Prefetch', key: 'prefetch_count', cls: 'num' },
      { label: 'Active', key: 'active' },
      { label: 'Activity status', key: 'activity_status' },
      { label: 'Arguments', render: (x) => (Object.keys(x.arguments || {}).length ? JSON.stringify(x.arguments) : '') },
    ], list, 'No consumers.'));
  });
}
