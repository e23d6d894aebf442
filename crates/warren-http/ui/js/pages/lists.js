// The listing pages: connections, channels, exchanges, queues. Paged,
// sorted and filtered by the API (page, page_size, sort, name).
import { api, enc } from '../api.js';
import { app } from '../app.js';
import { h, section, fmtNum, fmtRate, fmtBytes, rate, link, features, form, field, flash, parseArgs } from '../util.js';
import { pagedTable } from '../table.js';

const scoped = (what) => () => (app.vhost ? `/${what}/${enc(app.vhost)}` : `/${what}`);
const vhostCol = { label: 'Virtual host', key: 'vhost', sort: 'vhost' };
const vhostOptions = () => app.vhosts.map((v) => h('option', { value: v, selected: v === (app.vhost || '/') }, v));
const MISSING = 'This broker does not list connections and channels yet.';

export function connections(ctx, main) {
  const t = pagedTable(ctx, {
    id: 'connections', path: () => (app.vhost ? `/vhosts/${enc(app.vhost)}/connections` : '/connections'), missing: MISSING, empty: 'No connections.',
    columns: [
      { label: 'Name', sort: 'name', render: (c) => [h('a', { href: link.connection(c.name) }, c.name), c.user_provided_name ? h('div', { class: 'muted small-text' }, c.user_provided_name) : null] },
      vhostCol,
      { label: 'User', key: 'user', sort: 'user' },
      { label: 'Protocol', key: 'protocol', sort: 'protocol' },
      { label: 'Client', render: (c) => clientName(c) },
      { label: 'State', key: 'state', sort: 'state' },
      { label: 'Channels', key: 'channels', sort: 'channels', cls: 'num' },
      { label: 'From client', render: (c) => rateOrOct(c, 'recv_oct'), sort: 'recv_oct', cls: 'num' },
      { label: 'To client', render: (c) => rateOrOct(c, 'send_oct'), sort: 'send_oct', cls: 'num' },
      { label: '', render: (c) => h('button', { class: 'small danger', 'aria-label': `Close connection ${c.name}`, onclick: () => closeConn(c.name, t) }, 'Close') },
    ],
  });
  main.append(h('h1', {}, 'Connections'), section('All connections', t.el));
}

function clientName(c) {
  const p = c.client_properties || {};
  return [p.product, p.version].filter(Boolean).join(' ') || (p.connection_name || '–');
}

function rateOrOct(c, f) {
  const d = c[f + '_details'];
  const r = d && typeof d.rate === 'number' ? `${fmtBytes(d.rate)}/s` : null;
  return r ? h('span', { title: `${fmtBytes(c[f])} total` }, r) : fmtBytes(c[f]);
}

async function closeConn(name, t) {
  if (!confirm(`Close connection ${name}?`)) return;
  try { await api(`/connections/${enc(name)}`, { method: 'DELETE' }); flash('Connection closed'); t.reload(); } catch (e) { flash(e.message, 'error'); }
}

export function channels(ctx, main) {
  const t = pagedTable(ctx, {
    id: 'channels', path: () => (app.vhost ? `/vhosts/${enc(app.vhost)}/channels` : '/channels'), missing: MISSING, empty: 'No channels.',
    columns: [
      { label: 'Channel', sort: 'name', render: (c) => h('a', { href: link.channel(c.name) }, c.name) },
      vhostCol,
      { label: 'User', key: 'user', sort: 'user' },
      { label: 'Mode', render: (c) => [c.confirm && 'confirm', c.transactional && 'tx'].filter(Boolean).join(' ') || '–' },
      { label: 'Prefetch', key: 'prefetch_count', sort: 'prefetch_count', cls: 'num' },
      { label: 'Consumers', key: 'consumer_count', sort: 'consumer_count', cls: 'num' },
      { label: 'Unacked', key: 'messages_unacknowledged', sort: 'messages_unacknowledged', cls: 'num' },
      { label: 'Publish', render: (c) => fmtRate(rate(c, 'publish')), cls: 'num' },
      { label: 'Deliver / get', render: (c) => fmtRate(rate(c, 'deliver_get')), cls: 'num' },
      { label: 'Ack', render: (c) => fmtRate(rate(c, 'ack')), cls: 'num' },
    ],
  });
  main.append(h('h1', {}, 'Channels'), section('All channels', t.el));
}

export function exchanges(ctx, main) {
  const t = pagedTable(ctx, {
    id: 'exchanges', path: scoped('exchanges'),
    columns: [
      { label: 'Name', sort: 'name', render: (e) => h('a', { href: link.exchange(e.vhost, e.name) }, e.name || '(AMQP default)') },
      vhostCol,
      { label: 'Type', key: 'type', sort: 'type' },
      { label: 'Features', render: features },
      { label: 'Rate in', render: (e) => fmtRate(rate(e, 'publish_in')), cls: 'num' },
      { label: 'Rate out', render: (e) => fmtRate(rate(e, 'publish_out')), cls: 'num' },
    ],
  });
  const add = form({ id: 'add-exchange' }, [
    field('Virtual host', h('select', { name: 'vhost' }, vhostOptions())),
    field('Name', h('input', { name: 'name', required: true })),
    field('Type', h('select', { name: 'type' }, ['direct', 'fanout', 'topic', 'headers', 'x-consistent-hash', 'x-delayed-message'].map((x) => h('option', {}, x)))),
    field('Durability', h('select', { name: 'durable' }, h('option', { value: 'true' }, 'Durable'), h('option', { value: 'false' }, 'Transient'))),
    field('Auto delete', h('select', { name: 'auto_delete' }, h('option', { value: 'false' }, 'No'), h('option', { value: 'true' }, 'Yes'))),
    field('Internal', h('select', { name: 'internal' }, h('option', { value: 'false' }, 'No'), h('option', { value: 'true' }, 'Yes'))),
    field('Arguments', h('textarea', { name: 'arguments', rows: 2, placeholder: 'alternate-exchange=my-ae' }), 'key=value per line, or JSON'),
  ], 'Add exchange', async (d) => {
    await api(`/exchanges/${enc(d.get('vhost'))}/${enc(d.get('name'))}`, {
      method: 'PUT',
      body: { type: d.get('type'), durable: d.get('durable') === 'true', auto_delete: d.get('auto_delete') === 'true', internal: d.get('internal') === 'true', arguments: parseArgs(d.get('arguments')) },
    });
    flash(`Exchange ${d.get('name')} declared`);
    t.reload();
  });
  main.append(h('h1', {}, 'Exchanges'), section('All exchanges', t.el), section('Add a new exchange', add));
}

export function queues(ctx, main) {
  const t = pagedTable(ctx, {
    id: 'queues', path: scoped('queues'), refresh: 2000,
    columns: [
      { label: 'Name', sort: 'name', render: (q) => h('a', { href: link.queue(q.vhost, q.name) }, q.name) },
      vhostCol,
      { label: 'Type', key: 'type' },
      { label: 'Features', render: features },
      { label: 'State', key: 'state' },
      { label: 'Ready', key: 'messages_ready', sort: 'messages_ready', cls: 'num ready' },
      { label: 'Unacked', key: 'messages_unacknowledged', sort: 'messages_unacknowledged', cls: 'num' },
      { label: 'Total', key: 'messages', sort: 'messages', cls: 'num messages' },
      { label: 'Consumers', key: 'consumers', sort: 'consumers', cls: 'num' },
      { label: 'Incoming', render: (q) => fmtRate(rate(q, 'publish')), sort: 'message_stats.publish_details.rate', cls: 'num' },
      { label: 'Deliver / get', render: (q) => fmtRate(rate(q, 'deliver_get')), sort: 'message_stats.deliver_get_details.rate', cls: 'num' },
      { label: 'Ack', render: (q) => fmtRate(rate(q, 'ack')), cls: 'num' },
    ],
  });
  const add = form({ id: 'add-queue' }, [
    field('Virtual host', h('select', { name: 'vhost' }, vhostOptions())),
    field('Name', h('input', { name: 'name', required: true })),
    field('Durability', h('select', { name: 'durable' }, h('option', { value: 'true' }, 'Durable'), h('option', { value: 'false' }, 'Transient'))),
    field('Auto delete', h('select', { name: 'auto_delete' }, h('option', { value: 'false' }, 'No'), h('option', { value: 'true' }, 'Yes'))),
    field('Arguments', h('textarea', { name: 'arguments', rows: 2, placeholder: 'x-message-ttl=60000\nx-max-length=1000' }), 'key=value per line, or JSON'),
  ], 'Add queue', async (d) => {
    await api(`/queues/${enc(d.get('vhost'))}/${enc(d.get('name'))}`, {
      method: 'PUT',
      body: { durable: d.get('durable') === 'true', auto_delete: d.get('auto_delete') === 'true', arguments: parseArgs(d.get('arguments')) },
    });
    flash(`Queue ${d.get('name')} declared`);
    t.reload();
  });
  main.append(h('h1', {}, 'Queues'), section('All queues', t.el), section('Add a new queue', add));
}

export { fmtNum };
