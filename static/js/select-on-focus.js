'use strict';
// Fields marked data-select-on-focus select their whole value when focused (a key to copy).
// A static file, not an onfocus="" attribute: the Content-Security-Policy runs no inline code.
document.querySelectorAll('[data-select-on-focus]').forEach(function (field) {
  field.addEventListener('focus', function () { field.select(); });
});
