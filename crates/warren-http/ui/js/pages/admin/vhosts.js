// Admin › Virtual hosts: list, add (the creating user gets full permissions,
// as RabbitMQ's UI does), delete.
import { api, enc, credentials } from '../../api.js';
import { loadVhosts } from '../../app.js';
import { h, clear, section, simpleTable, form, field, flash } from '../../util.js';
import { del } from './buttons.js';

export async function vhosts(ctx, body) {
  const list = h('div', { id: 'vhosts' });
  const load = async () => clear(list, simpleTable([
    { label: 'Name', key: 'name' },
    { label: 'Description', key: 'description' },
    { label: 'Messages', key: 'messages', cls: 'num' },
    { label: 'Tracing', key: 'tracing' },
    { label: '', render: (v) => [h('a', { class: 'small-link', href: `#/topology/${enc(v.name)}` }, 'topology'), ' ', del(`/vhosts/${enc(v.name)}`, `virtual host ${v.name}`, async () => { await loadVhosts(); load(); })] },
  ], await api('/vhosts')));
  await load();
  body.append(section('Virtual hosts', list), section('Add a virtual host', form({ id: 'add-vhost' }, [
    field('Name', h('input', { name: 'name', required: true })),
    field('Description', h('input', { name: 'description' })),
  ], 'Add virtual host', async (d) => {
    await api(`/vhosts/${enc(d.get('name'))}`, { method: 'PUT', body: { description: d.get('description') || '' } });
    const me = credentials();
    if (me) await api(`/permissions/${enc(d.get('name'))}/${enc(me.user)}`, { method: 'PUT', body: { configure: '.*', write: '.*', read: '.*' } }).catch(() => {});
    flash(`Virtual host ${d.get('name')} added`); await loadVhosts(); load();
  })));
}
