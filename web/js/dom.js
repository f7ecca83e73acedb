// Small DOM helpers. Every piece of data goes in as text (textContent or a
// text node), never as markup.

/** Builds an element. `attrs`: `class`, `text`, `on<event>` handlers,
 *  boolean properties (`hidden`, `disabled`, `checked`, `required`),
 *  `value`, and any other attribute. Children: nodes, strings (as text),
 *  arrays; null/false are skipped. */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') element.className = value;
    else if (name === 'text') element.textContent = value;
    else if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (['hidden', 'disabled', 'checked', 'required', 'value', 'open'].includes(name)) {
      element[name] = value;
    } else element.setAttribute(name, value === true ? '' : String(value));
  }
  append(element, children);
  return element;
}

function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces everything inside `node`. */
export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** A link inside the interface (app.js turns clicks into navigation). */
export function link(href, text, attrs = {}) {
  return h('a', { href, ...attrs }, text);
}

export function formatSize(bytes) {
  if (bytes === null || bytes === undefined) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** A `<time>` with the local date and the exact UTC time as its title. */
export function time(iso) {
  if (!iso) return h('span', { class: 'muted', text: 'never' });
  const date = new Date(iso);
  return h('time', { datetime: iso, title: iso, text: date.toLocaleString() });
}

/** A button that copies `text` and says so. */
export function copyButton(text, label = 'Copy') {
  const button = h('button', { type: 'button', class: 'small', text: label });
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = 'Copied';
    } catch {
      button.textContent = 'Copy failed: select the text';
    }
    setTimeout(() => { button.textContent = label; }, 2000);
  });
  return button;
}

export function empty(...children) {
  return h('div', { class: 'empty', role: 'status' }, ...children);
}

export function notice(kind, title, ...children) {
  return h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('strong', { text: title }), ' ', ...children);
}

/** Asks for confirmation in a modal `<dialog>`; resolves to true or false. */
export function confirmDialog(title, message, confirmLabel) {
  return new Promise((resolve) => {
    const dialog = h('dialog', { 'aria-labelledby': 'confirm-title' },
      h('h2', { id: 'confirm-title', text: title }),
      h('p', { text: message }),
      h('form', { method: 'dialog', class: 'actions' },
        h('button', { value: 'cancel', text: 'Cancel' }),
        h('button', { value: 'confirm', class: 'danger', text: confirmLabel })));
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'confirm');
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A labelled control: the label wraps it, so it needs no id. */
export function field(label, control, hint) {
  return h('label', {}, label, control, hint ? h('span', { class: 'hint', text: hint }) : null);
}

export function select(name, options, current) {
  return h('select', { name },
    options.map(([value, text]) => h('option', { value, selected: value === current ? true : null }, text)));
}

/** Previous/next navigation from GitLab's pagination headers. `hrefFor`
 *  gives the link to a page number. */
export function pager(info, hrefFor) {
  if (!info.next && !info.prev) return null;
  const pages = info.totalPages ? ` of ${info.totalPages}` : '';
  return h('nav', { class: 'pager', 'aria-label': 'Pages' },
    info.prev ? link(hrefFor(info.prev), 'Previous', { rel: 'prev' }) : h('span', { class: 'muted', text: 'Previous' }),
    h('span', { text: `Page ${info.page}${pages}` }),
    info.next ? link(hrefFor(info.next), 'Next', { rel: 'next' }) : h('span', { class: 'muted', text: 'Next' }));
}

/** The current path with these query parameters (empty ones dropped). */
export function withQuery(params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.set(name, String(value));
  }
  const text = query.toString();
  return window.location.pathname + (text ? `?${text}` : '');
}

/** The sign-in page, coming back here afterwards. */
export function signInHref() {
  const here = window.location.pathname + window.location.search;
  return here === '/' || here.startsWith('/users/sign_in') ? '/users/sign_in' : `/users/sign_in?return_to=${encodeURIComponent(here)}`;
}
