// Admin › Policies (also for policymakers).
import { api, enc } from '../../api.js';
import { app } from '../../app.js';
import { h, clear, section, form, field, flash, parseArgs } from '../../util.js';
import { simpleTable } from '../../table.js';
import { del } from './buttons.js';

// The policy keys Warren applies (RabbitMQ's names), offered as buttons.
const KEYS = ['message-ttl', 'expires', 'max-length', 'max-length-bytes', 'overflow', 'dead-letter-exchange', 'dead-letter-routing-key', 'alternate-exchange'];

const wide = (el) => { el.classList.add('wide'); return el; };

export async function policies(ctx, body) {
  const list = h('div', { id: 'policies' });
  const definition = h('textarea', { name: 'definition', rows: 3, placeholder: 'max-length=1000\nmessage-ttl=60000' });
  const load = async () => clear(list, simpleTable([
    { label: 'Virtual host', key: 'vhost' }, { label: 'Name', key: 'name' },
    { label: 'Pattern', render: (p) => h('code', {}, p.pattern) }, { label: 'Apply to', key: 'apply-to' },
    { label: 'Definition', render: (p) => h('code', {}, JSON.stringify(p.definition)) }, { label: 'Priority', key: 'priority', cls: 'num' },
    { label: '', render: (p) => del(`/policies/${enc(p.vhost)}/${enc(p.name)}`, `policy ${p.name}`, load) },
  ], await api(app.vhost ? `/policies/${enc(app.vhost)}` : '/policies'), 'No policies.'));
  await load();
  body.append(section('Policies', list), section('Add / update a policy', form({ id: 'add-policy' }, [
    field('Virtual host', h('select', { name: 'vhost' }, app.vhosts.map((v) => h('option', { selected: v === (app.vhost || '/') }, v)))),
    field('Name', h('input', { name: 'name', required: true })),
    field('Pattern', h('input', { name: 'pattern', required: true, placeholder: '^orders\\.' })),
    field('Apply to', h('select', { name: 'apply-to' }, ['all', 'queues', 'exchanges'].map((x) => h('option', {}, x)))),
    field('Priority', h('input', { name: 'priority', type: 'number', value: 0 })),
    wide(field('Definition', definition, h('span', {}, 'key=value per line, or JSON; add: ', KEYS.map((k) => h('button', {
      type: 'button', class: 'small', title: `Add ${k}`,
      onclick: () => { definition.value = `${definition.value.replace(/\s*$/, '')}${definition.value.trim() ? '\n' : ''}${k}=`; definition.focus(); },
    }, k))))),
  ], 'Add / update policy', async (d) => {
    await api(`/policies/${enc(d.get('vhost'))}/${enc(d.get('name'))}`, { method: 'PUT', body: { pattern: d.get('pattern'), 'apply-to': d.get('apply-to'), priority: Number(d.get('priority')), definition: parseArgs(d.get('definition')) } });
    flash(`Policy ${d.get('name')} saved`); load();
  })));
}
