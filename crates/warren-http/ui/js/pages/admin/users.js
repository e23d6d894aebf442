// Admin › Users.
import { api, enc } from '../../api.js';
import { tagList } from '../../app.js';
import { h, clear, section, form, field, flash } from '../../util.js';
import { simpleTable } from '../../table.js';
import { del } from './buttons.js';

// Users: name, tags, the vhosts each can access, password set or not; Edit
// fills the form (an empty password keeps the current one), Delete asks.
export async function users(ctx, body) {
  const list = h('div', { id: 'users' });
  const name = h('input', { name: 'name', required: true, id: 'user-name' });
  const password = h('input', { name: 'password', type: 'password', id: 'user-password', autocomplete: 'new-password' });
  const tags = h('input', { name: 'tags', id: 'user-tags', placeholder: 'administrator, monitoring, policymaker, management' });
  const tagButtons = ['administrator', 'monitoring', 'policymaker', 'management', 'impersonator'].map((t) => h('button', {
    type: 'button', class: 'small', title: `Add the ${t} tag`,
    onclick: () => { const now = tagList(tags.value); if (!now.includes(t)) tags.value = [...now, t].join(', '); },
  }, t));
  const load = async () => {
    const [all, perms] = await Promise.all([api('/users'), api('/permissions')]);
    clear(list, simpleTable([
      { label: 'Name', key: 'name' },
      { label: 'Tags', render: (u) => tagList(u.tags).flatMap((t) => [h('span', { class: 'tag' }, t), ' ']) },
      { label: 'Can access virtual hosts', render: (u) => perms.filter((p) => p.user === u.name).map((p) => p.vhost).join(', ') || h('span', { class: 'muted' }, 'No access') },
      { label: 'Has password', render: (u) => (u.password_hash ? '●' : '○') },
      { label: '', render: (u) => [h('button', {
        class: 'small', 'aria-label': `Edit user ${u.name}`,
        onclick: () => { name.value = u.name; tags.value = tagList(u.tags).join(', '); password.value = ''; password.focus(); },
      }, 'Edit'), ' ', del(`/users/${enc(u.name)}`, `user ${u.name}`, load)] },
    ], all));
  };
  await load();
  body.append(section('Users', list), section('Add / update a user', form({ id: 'add-user' }, [
    field('Username', name),
    field('Password', password, 'leave empty to keep an existing user\'s password'),
    field('Tags', tags, h('span', {}, 'comma-separated: ', tagButtons)),
  ], 'Add / update user', async (d) => {
    const user = { tags: tagList(d.get('tags')).join(',') };
    if (d.get('password')) user.password = d.get('password');
    await api(`/users/${enc(d.get('name'))}`, { method: 'PUT', body: user });
    flash(`User ${d.get('name')} saved`); password.value = ''; load();
  })));
}
