// Plumb dashboard: live updates and actions on top of pages that work without them. Regions
// marked data-live="<fragment>" are fetched again (?fragment=<fragment>) when the server-sent
// events name one of their data-keys ("*": any object); forms marked data-action are sent in
// the background and their answer is read out in #action-result.
(function () {
  'use strict';

  var conn = document.getElementById('conn');
  var token = document.querySelector('meta[name="csrf-token"]').content;
  var regions = Array.prototype.slice.call(document.querySelectorAll('[data-live]'));
  var timers = new Map();

  function setConn(text) {
    if (conn) conn.textContent = text;
  }

  function refresh(region) {
    var url = new URL(window.location.href);
    url.searchParams.set('fragment', region.dataset.live);
    url.hash = '';
    return fetch(url, { headers: { Accept: 'text/html' }, credentials: 'same-origin' })
      .then(function (r) {
        if (!r.ok) throw new Error('status ' + r.status);
        return r.text();
      })
      .then(function (html) {
        var active = document.activeElement && document.activeElement.id;
        region.innerHTML = html; // the server's own escaped HTML
        bindActions(region);
        if (active) {
          var el = document.getElementById(active);
          if (el) el.focus();
        }
      })
      .catch(function () {
        setConn('Live updates: could not refresh; retrying on the next change');
      });
  }

  function schedule(region) {
    if (timers.has(region)) return;
    var delay = parseInt(region.dataset.delay || '400', 10);
    timers.set(region, window.setTimeout(function () {
      timers.delete(region);
      refresh(region);
    }, delay));
  }

  function onMessage(ev) {
    var m;
    try {
      m = JSON.parse(ev.data);
    } catch (e) {
      return;
    }
    regions.forEach(function (region) {
      var keys = region.dataset.keys || '';
      if (keys === '*' || keys.split(' ').indexOf(m.key) >= 0) schedule(region);
    });
  }

  function bindActions(root) {
    root.querySelectorAll('form[data-action]').forEach(function (form) {
      form.addEventListener('submit', function (e) {
        e.preventDefault();
        var button = form.querySelector('button');
        var out = document.getElementById('action-result');
        button.disabled = true;
        out.classList.remove('error');
        out.textContent = button.textContent + ': sending…';
        fetch(form.action, {
          method: 'POST',
          headers: { 'X-CSRF-Token': token, Accept: 'application/json' },
          body: new FormData(form),
          credentials: 'same-origin'
        })
          .then(function (r) {
            return r.json().then(function (body) { return { ok: r.ok, body: body }; });
          })
          .then(function (res) {
            out.textContent = res.ok ? res.body.message : res.body.error;
            if (!res.ok) out.classList.add('error');
          })
          .catch(function () {
            out.textContent = 'The dashboard did not answer: is plumb dashboard still running?';
            out.classList.add('error');
          })
          .finally(function () {
            button.disabled = false;
            regions.forEach(schedule);
          });
      });
    });
  }

  bindActions(document);

  if (regions.length === 0 || !('EventSource' in window)) {
    setConn('');
    return;
  }
  var es = new EventSource('/events');
  es.addEventListener('open', function () { setConn('Live updates: on'); });
  es.addEventListener('error', function () { setConn('Live updates: reconnecting…'); });
  es.addEventListener('object', onMessage);
  es.addEventListener('event', onMessage);
  es.addEventListener('resync', function () { regions.forEach(schedule); });
  window.addEventListener('pagehide', function () { es.close(); });
})();
