// Entry point: draws the header's sign-in state, turns link clicks into
// in-page navigation, and hands each path to its page module.

import { match } from './routes.js';
import { api, token, forgetToken, ApiError } from './api.js';
import { h, replace, link, signInHref } from './dom.js';
import { showError, notFound } from './pages/errors.js';
import * as signIn from './pages/signin.js';
import * as projects from './pages/projects.js';
import * as packages from './pages/packages.js';
import * as packagePage from './pages/package.js';
import * as group from './pages/group.js';
import * as settings from './pages/settings.js';
import * as tokens from './pages/tokens.js';

const PAGES = {
  'projects': projects.render,
  'sign-in': signIn.render,
  'packages': packages.render,
  'package': packagePage.render,
  'group': group.render,
  'namespace': renderNamespace,
  'settings': settings.render,
  'access-tokens': tokens.render,
  'deploy-tokens': tokens.render,
  'not-found': (main) => notFound(main),
};

const state = { user: null };

/** Who the stored token belongs to (`GET /user`), or null. */
async function loadUser() {
  state.user = null;
  if (!token()) return;
  try {
    state.user = (await api('/api/v4/user')).data;
  } catch (error) {
    // A token that no longer works is forgotten; the page says so.
    if (error instanceof ApiError && error.status === 401) {
      forgetToken();
      state.expired = true;
    }
  }
}

function drawSession() {
  const slot = document.getElementById('session');
  if (state.user) {
    replace(slot,
      h('span', { class: 'muted', text: `Signed in as ${state.user.username}` }),
      h('button', { type: 'button', class: 'small', onclick: signOut }, 'Sign out'));
  } else {
    replace(slot, link(signInHref(), 'Sign in'));
  }
}

function signOut() {
  forgetToken();
  state.user = null;
  drawSession();
  navigate('/');
}

export function navigate(path, { replaceState = false } = {}) {
  if (replaceState) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  renderMoved();
}

/** A path that names no project: a group, or nothing the visitor may see. */
async function renderNamespace(main, route, context) {
  const id = encodeURIComponent(route.path);
  try {
    await api(`/api/v4/projects/${id}`);
    return packages.render(main, { project: route.path }, context);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
  }
  try {
    await api(`/api/v4/groups/${id}`);
    return group.render(main, { group: route.path }, context);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
  }
  if (context.user && context.user.username === route.path) {
    return replace(main, h('h1', { tabindex: '-1', text: context.user.name || context.user.username }),
      h('p', { text: `Signed in as ${context.user.username}.` }));
  }
  return notFound(main, context);
}

let rendering = 0;

async function render() {
  const main = document.getElementById('main');
  const route = match(window.location.pathname);
  const current = ++rendering;
  const context = {
    user: state.user,
    navigate,
    refresh: render,
    query: new URLSearchParams(window.location.search),
    stale: () => current !== rendering,
    onSignIn: async () => { await loadUser(); drawSession(); },
  };
  drawSession();
  main.setAttribute('aria-busy', 'true');
  replace(main, h('p', { class: 'muted', text: 'Loading…' }));
  try {
    await PAGES[route.page](main, route, context);
  } catch (error) {
    if (current === rendering) showError(main, error, context);
  }
  if (current !== rendering) return;
  main.removeAttribute('aria-busy');
  if (state.expired) {
    state.expired = false;
    main.prepend(h('div', { class: 'notice error', role: 'alert' },
      h('strong', { text: 'Your token no longer works.' }), ' It was forgotten; ', link(signInHref(), 'sign in'), ' again.'));
  }
  const heading = main.querySelector('h1');
  if (heading) {
    document.title = `${heading.textContent} · Package registry`;
    heading.setAttribute('tabindex', '-1');
  }
}

/** In-page navigation for plain clicks on links to this origin's pages. */
function onClick(event) {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const anchor = event.target.closest('a[href]');
  if (!anchor || anchor.hasAttribute('download') || anchor.target) return;
  const url = new URL(anchor.href);
  if (url.origin !== window.location.origin || url.pathname.startsWith('/api/') || url.pathname.startsWith('/-/')) return;
  if (url.hash && url.pathname === window.location.pathname) return;
  event.preventDefault();
  history.pushState(null, '', url.pathname + url.search);
  renderMoved();
}

function renderMoved() {
  render().then(() => {
    const heading = document.querySelector('main h1');
    if (heading) heading.focus();
  });
}

async function start() {
  document.addEventListener('click', onClick);
  window.addEventListener('popstate', renderMoved);
  await loadUser();
  drawSession();
  await render();
}

start();
