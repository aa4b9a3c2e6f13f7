'use strict';
// Tick in place: a checklist form marked data-in-place posts with fetch and the fresh release
// page's changed parts (the checklist, the gate, the headline) replace the old ones, so ticking
// fourteen items is fourteen clicks, not fourteen reloads. Without script the same form posts
// and redirects back to the item (views.tick_item): the page works either way. A static file:
// the Content-Security-Policy runs no inline code.
(function () {
  var PARTS = ['.headline', '#gate', '#stages'];

  function swap(doc, selector) {
    var fresh = doc.querySelector(selector);
    var old = document.querySelector(selector);
    if (fresh && old) { old.replaceWith(fresh); }
  }

  function refusal(doc) {
    var box = doc.querySelector('#refusal');
    return box ? box.textContent.replace(/\s+/g, ' ').trim() : '';
  }

  document.addEventListener('submit', function (event) {
    var form = event.target;
    if (!form.matches('form[data-in-place]') || !window.fetch) { return; }
    event.preventDefault();
    var checklist = form.closest('section.checklist');
    var button = form.querySelector('button');
    var focusId = form.closest('li') ? form.closest('li').id : '';
    if (button) { button.disabled = true; }
    fetch(form.action, {
      method: 'POST',
      body: new FormData(form),
      credentials: 'same-origin',
      headers: { 'X-Requested-With': 'rolloutdesk' }
    }).then(function (response) {
      return response.text().then(function (html) { return { response: response, html: html }; });
    }).then(function (answer) {
      var doc = new DOMParser().parseFromString(answer.html, 'text/html');
      if (!answer.response.ok) {
        // Refused (403/409/400): the page's words, next to what was clicked.
        if (button) { button.disabled = false; }
        var note = document.createElement('p');
        note.className = 'error-box small';
        note.setAttribute('role', 'alert');
        note.textContent = refusal(doc) || ('Not done (HTTP ' + answer.response.status + ').');
        form.after(note);
        return;
      }
      if (checklist) { swap(doc, '#' + checklist.id); }
      PARTS.forEach(function (selector) { swap(doc, selector); });
      var again = focusId && document.getElementById(focusId);
      var target = again ? again.querySelector('button') : document.querySelector('#' + (checklist ? checklist.id : 'checklists') + ' [role="status"]');
      if (target) { target.focus({ preventScroll: true }); }
    }).catch(function () {
      // The network failed: post the old way, which reloads the page with the outcome.
      form.submit();
    });
  });
})();
