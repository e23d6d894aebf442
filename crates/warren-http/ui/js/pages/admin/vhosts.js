// Admin › Virtual hosts: list, add (the creating user gets full permissions,
// as RabbitMQ's UI does), delete.
import { api, enc, credentials } from '../../api.js';
import { loadVhosts } from '../../app.js';
import { h, clear, section, form, field, flash, fmtBytes } from '../../util.js';
import { simpleTable } from '../../table.js';

const byteRate = (d) => (d && typeof d.rate === 'number' ? `${fmtBytes(Math.round(d.rate))}/s` : '–');
import { del } from './buttons.js';

export async function vhosts(ctx, body) {
  const list = h('div', { id: 'vhosts' });
  // As RabbitMQ's table: users with access, state, messages, network rates.
  const load = async () => {
    const [all, perms] = await Promise.all([api('/vhosts'), api('/permissions')]);
    clear(list, simpleTable([
      { label: 'Name', key: 'name' },
      { label: 'Description', key: 'description' },
      { label: 'Users', render: (v) => perms.filter((p) => p.vhost === v.name).map((p) => p.user).join(', ') || h('span', { class: 'muted' }, 'none') },
      { label: 'State', render: (v) => Object.values(v.cluster_state || {}).join(', ') || '–' },
      { label: 'Ready', key: 'messages_ready', cls: 'num' },
      { label: 'Unacked', key: 'messages_unacknowledged', cls: 'num' },
      { label: 'Total', key: 'messages', cls: 'num' },
      { label: 'From client', render: (v) => byteRate(v.recv_oct_details), cls: 'num' },
      { label: 'To client', render: (v) => byteRate(v.send_oct_details), cls: 'num' },
      { label: 'Tracing', key: 'tracing' },
      { label: '', render: (v) => [h('a', { class: 'small-link', href: `#/topology/${enc(v.name)}` }, 'topology'), ' ', del(`/vhosts/${enc(v.name)}`, `virtual host ${v.name}`, async () => { await loadVhosts(); await load(); })] },
    ], all));
  };
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
