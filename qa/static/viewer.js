window.__qaOpenArticle = (link) => trigger('open', {link: link});
if (!window.__qaListening) {
  window.__qaListening = true;
  document.addEventListener('click', (event) => {
    const anchor = event.target.closest('a[href^="#qa-open/"]');
    if (!anchor) return;
    event.preventDefault();
    window.__qaOpenArticle(anchor.getAttribute('href'));
  }, true);
}
// The chat's Copy buttons copy the plain text each answer carries (.qa-plain), not its HTML: the click is seen
// first, and the clipboard write Gradio makes in the same click (or its copy-command fallback) gets that text.
if (!window.__qaCopying) {
  window.__qaCopying = true;
  const plainOf = (row) => {
    const plain = row.querySelector('.qa-plain');
    const message = row.querySelector('.message-content') || row;
    return plain ? plain.textContent : message.innerText.trim();
  };
  document.addEventListener('click', (event) => {
    const button = event.target.closest('#qa-chat button');
    if (!button) return;
    const label = button.getAttribute('aria-label') || '';
    const buttons = button.closest('.message-buttons');  // just after the message they belong to
    const row = buttons ? buttons.previousElementSibling : button.closest('.message-row');
    if (row && /^Cop(y|ied)/.test(label)) {
      window.__qaPlainCopy = plainOf(row);
    } else if (/conversation/i.test(label)) {
      const rows = [...document.querySelectorAll('#qa-chat .message-row')];
      window.__qaPlainCopy = rows.map((r) => (r.classList.contains('user-row') ? 'Question: ' : '')
        + plainOf(r)).join('\n\n');
    } else {
      return;
    }
    setTimeout(() => { window.__qaPlainCopy = null; }, 1000);
  }, true);
  if (navigator.clipboard && navigator.clipboard.writeText) {
    const write = navigator.clipboard.writeText.bind(navigator.clipboard);
    navigator.clipboard.writeText = (text) => {
      const plain = window.__qaPlainCopy;
      window.__qaPlainCopy = null;
      return write(plain == null ? text : plain);
    };
  }
  document.addEventListener('copy', (event) => {
    if (window.__qaPlainCopy == null) return;
    event.clipboardData.setData('text/plain', window.__qaPlainCopy);
    event.preventDefault();
    window.__qaPlainCopy = null;
  }, true);
}
watch('value', () => {
  const quote = element.querySelector('mark.qa-quote');
  if (quote) quote.scrollIntoView({block: 'center'});
});
