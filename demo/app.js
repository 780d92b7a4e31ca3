// stompgate demo page: one @stomp/stompjs client over the gateway's WebSocket endpoint on the
// same host. No credentials here: the gateway rewrites CONNECT with its own broker identity.
// Optional query parameter `ws`: another path on this host (`?ws=/stomp`, for a gateway run with
// a different --ws-path) or a whole `ws://`/`wss://` URL.
(function () {
  'use strict';

  const MAX_MESSAGES = 200; // older entries are dropped so the page never grows without bound
  const TOAST_MS = 4000;

  const $ = (id) => document.getElementById(id);
  const els = {
    status: $('status'),
    endpoint: $('endpoint'),
    destination: $('destination'),
    subscribe: $('subscribe'),
    subscriptions: $('subscriptions'),
    message: $('message'),
    send: $('send'),
    messages: $('messages'),
    toasts: $('toasts'),
  };
  const subscriptions = new Map(); // destination -> StompSubscription

  function endpointUrl() {
    const path = new URLSearchParams(location.search).get('ws') || '/ws';
    if (/^wss?:\/\//.test(path)) return path;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}${path.startsWith('/') ? path : '/' + path}`;
  }

  function setStatus(state, text) {
    els.status.dataset.state = state;
    els.status.textContent = text;
    const connected = state === 'connected';
    els.subscribe.disabled = !connected;
    els.send.disabled = !connected;
  }

  function toast(title, text) {
    const t = document.createElement('div');
    t.className = 'toast';
    const h = document.createElement('strong');
    h.textContent = title;
    const p = document.createElement('span');
    p.textContent = text.length > 160 ? text.slice(0, 160) + '…' : text;
    t.append(h, p);
    els.toasts.append(t);
    setTimeout(() => t.remove(), TOAST_MS);
  }

  function showMessage(destination, msg) {
    const li = document.createElement('li');
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.textContent = `${new Date().toLocaleTimeString()} · ${destination}`;
    const body = document.createElement('pre');
    body.className = 'body';
    body.textContent = msg.body;
    li.append(meta, body);
    els.messages.prepend(li);
    while (els.messages.children.length > MAX_MESSAGES) els.messages.lastElementChild.remove();
    toast(destination, msg.body);
  }

  function renderSubscriptions() {
    els.subscriptions.replaceChildren();
    for (const dest of subscriptions.keys()) {
      const li = document.createElement('li');
      li.textContent = dest;
      const x = document.createElement('button');
      x.type = 'button';
      x.className = 'link';
      x.textContent = '×';
      x.title = `Unsubscribe from ${dest}`;
      x.addEventListener('click', () => unsubscribe(dest));
      li.append(x);
      els.subscriptions.append(li);
    }
  }

  function subscribe(client, dest) {
    if (!dest || subscriptions.has(dest)) return;
    subscriptions.set(dest, client.subscribe(dest, (msg) => showMessage(dest, msg)));
    renderSubscriptions();
  }

  function unsubscribe(dest) {
    const sub = subscriptions.get(dest);
    if (sub && client.connected) sub.unsubscribe();
    subscriptions.delete(dest);
    renderSubscriptions();
  }

  const url = endpointUrl();
  els.endpoint.textContent = url;
  const client = new StompJs.Client({
    brokerURL: url,
    reconnectDelay: 2000,
    heartbeatIncoming: 10000,
    heartbeatOutgoing: 10000,
  });

  client.onConnect = () => {
    setStatus('connected', 'connected');
    // After a reconnect, subscribe again to what the user had.
    const dests = [...subscriptions.keys()];
    subscriptions.clear();
    dests.forEach((d) => subscribe(client, d));
  };
  client.onStompError = (frame) => {
    const why = frame.headers.message || 'broker error';
    setStatus('error', `error: ${why}`);
    toast('Error', why);
  };
  client.onWebSocketClose = () => {
    if (els.status.dataset.state !== 'error') setStatus('disconnected', 'disconnected — reconnecting…');
  };

  $('subscribe-form').addEventListener('submit', (e) => {
    e.preventDefault();
    subscribe(client, els.destination.value.trim());
  });
  $('send-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const dest = els.destination.value.trim();
    if (!dest || !client.connected) return;
    client.publish({ destination: dest, body: els.message.value });
  });
  $('clear').addEventListener('click', () => els.messages.replaceChildren());

  setStatus('connecting', 'connecting…');
  client.activate();
})();
