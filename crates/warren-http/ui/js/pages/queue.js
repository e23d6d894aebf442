// One queue: figures, depth and rate charts (polled every second),
// consumers, bindings, get messages, publish, purge, delete.
import { api, enc, maybe } from '../api.js';
import { h, clear, section, kv, goneNotice, showGone, fmtNum, fmtRate, fmtBytes, rate, features, form, field, flash, link, hasStats } from '../util.js';
import { simpleTable } from '../table.js';
import { TimeChart } from '../chart.js';
import { publishForm, bindingsTable, bindForm } from './common.js';

export async function render(ctx, main, vhost, name) {
  const base = `/queues/${enc(vhost)}/${enc(name)}`;
  const depth = new TimeChart({ id: 'chart-depth', series: [{ label: 'Ready' }, { label: 'Unacked' }, { label: 'Total' }], span: 120 });
  const rates = new TimeChart({ id: 'chart-queue-rates', rate: true, series: [{ label: 'Publish' }, { label: 'Deliver / get' }, { label: 'Ack' }, { label: 'Redelivered' }] });
  const details = h('div', { id: 'queue-details' });
  const consumers = h('div', { id: 'queue-consumers' });
  const bindings = h('div', { id: 'queue-bindings' });
  const got = h('div', { id: 'get-results' });
  const gone = goneNotice('queue-gone');
  const loadBindings = async () => clear(bindings, bindingsTable(await api(`${base}/bindings`), { vhost, from: 'queue', onChange: loadBindings }));

  main.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/queues' }, 'Queues'), ' › ', vhost, ' › '),
    h('h1', {}, 'Queue ', h('span', { class: 'obj-name', id: 'queue-name' }, name), ' ', h('a', { class: 'small-link', href: link.topology(vhost) }, 'topology ›')),
    gone,
    h('div', { class: 'cols' }, section('Overview', details), section('Queued messages', depth.el)),
    section('Message rates', rates.el),
    section('Consumers', consumers),
    section('Bindings', bindings, bindForm(vhost, name, 'queue', loadBindings)),
    h('div', { class: 'cols' },
      section('Publish message', h('p', { class: 'muted' }, 'Published through the default exchange with this queue\'s name as routing key.'), publishForm(vhost, '', name)),
      section('Get messages', h('p', { class: 'muted' }, 'Getting messages is destructive with Ack mode "Automatic ack".'),
        form({ id: 'get-form' }, [
          field('Ack mode', h('select', { name: 'ackmode' },
            h('option', { value: 'ack_requeue_true' }, 'Nack message requeue true'),
            h('option', { value: 'ack_requeue_false' }, 'Automatic ack'),
            h('option', { value: 'reject_requeue_true' }, 'Reject requeue true'),
            h('option', { value: 'reject_requeue_false' }, 'Reject requeue false'))),
          field('Encoding', h('select', { name: 'encoding' }, h('option', { value: 'auto' }, 'Auto string / base64'), h('option', { value: 'base64' }, 'base64'))),
          field('Messages', h('input', { name: 'count', type: 'number', min: 1, value: 1 })),
        ], 'Get message(s)', async (d) => {
          const msgs = await api(`${base}/get`, { method: 'POST', body: { count: Number(d.get('count')), ackmode: d.get('ackmode'), encoding: d.get('encoding'), truncate: 50000 } });
          clear(got, msgs.length ? msgs.map((m, i) => h('div', { class: 'message' },
            h('h3', {}, `Message ${i + 1}`),
            kv([['Exchange', m.exchange || '(AMQP default)'], ['Routing key', m.routing_key], ['Redelivered', String(m.redelivered)],
              ['Remaining', fmtNum(m.message_count)], ['Properties', h('code', {}, JSON.stringify(m.properties))],
              ['Payload', h('span', {}, `${fmtBytes(m.payload_bytes)}, encoding: ${m.payload_encoding}`)]]),
            h('pre', { class: 'payload' }, m.payload))) : h('p', { class: 'muted' }, 'Queue is empty'));
        }), got)),
    section('Danger zone', h('div', { class: 'actions' },
      h('button', { id: 'purge', class: 'danger', onclick: async () => { if (confirm(`Purge all messages of ${name}?`)) { await api(`${base}/contents`, { method: 'DELETE' }); flash('Queue purged'); } } }, 'Purge messages'),
      h('button', { id: 'delete-queue', class: 'danger', onclick: async () => { if (confirm(`Delete queue ${name}?`)) { await api(base, { method: 'DELETE' }); flash('Queue deleted'); location.hash = '#/queues'; } } }, 'Delete queue'))),
  );
  loadBindings().catch(() => {});

  let consumersOk = true;
  ctx.every(1000, async () => {
    let q;
    try { q = await api(base); } catch (e) {
      if (e.status === 404) { showGone(gone, `Queue ${name} does not exist in virtual host ${vhost}.`); return; }
      throw e;
    }
    gone.hidden = true;
    depth.push([q.messages_ready, q.messages_unacknowledged, q.messages]);
    if (hasStats(q)) rates.push(['publish', 'deliver_get', 'ack', 'redeliver'].map((f) => rate(q, f)));
    else { rates.push([]); rates.setNote('This broker does not report message rates yet'); }
    clear(details, kv([
      ['Virtual host', vhost],
      ['Type', q.type],
      ['Features', h('span', {}, features(q))],
      ['State', q.state],
      ['Messages', h('span', { id: 'queue-messages' }, `${fmtNum(q.messages)} (${fmtNum(q.messages_ready)} ready, ${fmtNum(q.messages_unacknowledged)} unacked)`)],
      ['Consumers', fmtNum(q.consumers)],
      q.memory !== undefined && ['Memory', fmtBytes(q.memory)],
      q.message_bytes !== undefined && ['Message bytes', fmtBytes(q.message_bytes)],
      ['Incoming', fmtRate(rate(q, 'publish'))],
      ['Arguments', h('code', {}, JSON.stringify(q.arguments || {}))],
      q.policy && ['Policy', q.policy],
    ]));
    // Consumers: the queue's consumer_details, else /api/consumers/V.
    let list = q.consumer_details;
    if (!list && consumersOk) {
      const all = await maybe(`/consumers/${enc(vhost)}`);
      if (all === null) consumersOk = false;
      else list = all.filter((c) => c.queue && c.queue.name === name);
    }
    if (list) {
      clear(consumers, simpleTable([
        { label: 'Channel', render: (c) => (c.channel_details ? h('a', { href: link.channel(c.channel_details.name) }, c.channel_details.name) : '–') },
        { label: 'Consumer tag', key: 'consumer_tag' },
        { label: 'Ack required', key: 'ack_required' },
        { label: 'Exclusive', key: 'exclusive' },
        { label: 'Prefetch', key: 'prefetch_count', cls: 'num' },
        { label: 'Active', key: 'active' },
        { label: 'Status', key: 'activity_status' },
      ], list, 'No consumers.'));
    } else {
      clear(consumers, h('p', { class: 'muted' }, `${fmtNum(q.consumers)} consumer(s); this broker does not list consumer details yet.`));
    }
  });
}
