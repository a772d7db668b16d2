// Bound here rather than in inline handlers, which the Content-Security-Policy forbids:
// a form with data-confirm asks before it is sent (its text is an attribute, so a name with
// an apostrophe is just text), and a select with data-autosubmit sends its form on change.
document.querySelectorAll("form[data-confirm]").forEach((form) => form.addEventListener("submit", (event) => {
  if (!window.confirm(form.dataset.confirm)) event.preventDefault();
}));
document.querySelectorAll("select[data-autosubmit]").forEach((select) => select.addEventListener("change", () => {
  select.form.submit();
}));
