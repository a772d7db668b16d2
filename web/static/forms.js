// Bound here rather than in inline handlers, which the Content-Security-Policy forbids:
// a form with data-confirm asks before it is sent (its text is an attribute, so a name with
// an apostrophe is just text), and a select with data-autosubmit sends its form on change.
document.querySelectorAll("form[data-confirm]").forEach((form) => form.addEventListener("submit", (event) => {
  if (!window.confirm(form.dataset.confirm)) event.preventDefault();
}));
// Sent on change, the page reloads at each option a keyboard user steps through with the arrow
// keys: the select they were using gets the focus back (it went to the top of the page, and
// the next option was ten Tabs away again).
(function () {
  const REFOCUS = "vidfarm-refocus-select";
  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    if (window.sessionStorage.getItem(REFOCUS) === select.name) select.focus();
    select.addEventListener("change", () => {
      window.sessionStorage.setItem(REFOCUS, select.name);
      select.form.submit();
    });
  });
  window.sessionStorage.removeItem(REFOCUS);
})();
