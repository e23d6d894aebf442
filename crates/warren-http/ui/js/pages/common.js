// Pieces shared by the queue and exchange pages: the publish form, the
// bindings tables and the add-binding form.
import { api, enc } from '../api.js';
import { h, form, field, flash, parseArgs, link } from '../util.js';
import { simpleTable } from '../table.js';

// Publish through `exchange` ('' = the default exchange); `routingKey` preset for queues.
export function publishForm(vhost, exchange, routingKey) {
  const props = h('textarea', { name: 'properties', rows: 2, placeholder: 'content_type=text/plain\nmessage_id=42' });
  const headers = h('textarea', { name: 'headers', rows: 2, placeholder: 'x-origin=ui' });
  return form({ class: 'form publish-form', id: 'publish-form' }, [
    routingKey !== undefined
      ? h('input', { type: 'hidden', name: 'routing_key', value: routingKey })
      : field('Routing key', h('input', { name: 'routing_key', id: 'publish-routing-key' })),
    field('Delivery mode', h('select', { name: 'delivery_mode' }, h('option', { value: '1' }, '1 - Non-persistent'), h('option', { value: '2' }, '2 - Persistent'))),
    field('Headers', headers, 'key=value per line'),
    field('Properties', props, 'content_type, correlation_id, priority, expiration…'),
    field('Payload', h('textarea', { name: 'payload', rows: 4, id: 'publish-payload' })),
    field('Payload encoding', h('select', { name: 'payload_encoding' }, h('option', { value: 'string' }, 'String (default)'), h('option', { value: 'base64' }, 'Base64'))),
  ], 'Publish message', async (d, f) => {
    const properties = { ...parseArgs(d.get('properties')), delivery_mode: Number(d.get('delivery_mode')) };
    const hdrs = parseArgs(d.get('headers'));
    if (Object.keys(hdrs).length) properties.headers = hdrs;
    const r = await api(`/exchanges/${enc(vhost)}/${enc(exchange || 'amq.default')}/publish`, {
      method: 'POST',
      body: { routing_key: d.get('routing_key') || '', payload: d.get('payload') || '', payload_encoding: d.get('payload_encoding'), properties },
    });
    flash(r.routed ? 'Message published.' : 'Message published, but not routed.', r.routed ? 'ok' : 'warn');
    f.querySelector('[name=payload]').value = '';
  });
}

export function bindingsTable(rows, { vhost, from, onChange }) {
  const cols = [
    from === 'queue'
      ? { label: 'From exchange', render: (b) => h('a', { href: link.exchange(vhost, b.source) }, b.source || '(AMQP default)') }
      : { label: 'To', render: (b) => h('a', { href: b.destination_type === 'queue' ? link.queue(vhost, b.destination) : link.exchange(vhost, b.destination) }, `${b.destination_type === 'queue' ? 'queue' : 'exchange'} ${b.destination}`) },
    { label: 'Routing key', render: (b) => h('code', {}, b.routing_key) },
    { label: 'Arguments', render: (b) => (Object.keys(b.arguments || {}).length ? JSON.stringify(b.arguments) : '') },
    {
      label: '', render: (b) => (b.source === '' ? h('span', { class: 'muted' }, '(default binding)') : h('button', {
        class: 'small danger',
        'aria-label': `Unbind ${b.source} from ${b.destination_type} ${b.destination} (key ${b.routing_key || 'empty'})`,
        onclick: async () => {
          try {
            await api(`/bindings/${enc(vhost)}/e/${enc(b.source)}/${b.destination_type === 'queue' ? 'q' : 'e'}/${enc(b.destination)}/${enc(b.properties_key)}`, { method: 'DELETE' });
            flash('Unbound'); onChange();
          } catch (e) { flash(e.message, 'error'); }
        },
      }, 'Unbind')),
    },
  ];
  return simpleTable(cols, rows, 'No bindings.');
}

// Bind queue/exchange `name` (as destination when from='queue', as source otherwise).
export function bindForm(vhost, name, from, onChange) {
  return form({ class: 'form inline', id: 'bind-form' }, [
    from === 'queue'
      ? field('From exchange', h('input', { name: 'other', required: true }))
      : [field('To', h('select', { name: 'kind' }, h('option', { value: 'q' }, 'Queue'), h('option', { value: 'e' }, 'Exchange'))), field('Name', h('input', { name: 'other', required: true }))],
    field('Routing key', h('input', { name: 'routing_key' })),
    field('Arguments', h('input', { name: 'arguments', placeholder: 'x-match=any' })),
  ], 'Bind', async (d) => {
    const [src, kind, dst] = from === 'queue' ? [d.get('other'), 'q', name] : [name, d.get('kind'), d.get('other')];
    await api(`/bindings/${enc(vhost)}/e/${enc(src)}/${kind}/${enc(dst)}`, { method: 'POST', body: { routing_key: d.get('routing_key') || '', arguments: parseArgs(d.get('arguments')) } });
    flash('Bound'); onChange();
  });
}
