"""The chat page's style sheet and script, as strings that ``app.py`` puts into the page.

They travel inside a ``gr.HTML`` component (its ``head`` and ``js_on_load``), not through
``launch(css=..., js=...)``, so they hold whether the app is launched on its own or mounted
into the API's FastAPI app, which sets its own launch options.

The script does what Gradio does not: it opens an article in the article view when a "Read the
article" link is clicked (by setting the hidden opener's value and triggering its click
event), moves to a quote when its ``[n]`` is clicked, copies an answer as plain text with its
citations, scrolls a new answer so that its top is in view, and gives Gradio's own controls
an accessible name where they lack one. It fetches nothing and never turns text into markup.
"""

from __future__ import annotations

# Colours: every text colour is at least 4.5:1 on its background, in light and dark themes.
CSS = """
<style id="rag-style">
.gradio-container { max-width: 1180px !important; margin: 0 auto !important; }
.gradio-container, .gradio-container button, .gradio-container h1, .gradio-container h2,
.gradio-container h3, .gradio-container input, .gradio-container textarea {
  font-family: ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans",
    "DejaVu Sans", sans-serif !important; }
#rag-header h1 { font-size: 1.5rem; margin: 0 0 .15rem 0; line-height: 1.2; }
#rag-header p { margin: 0; color: #374151; font-size: .95rem; }
.dark #rag-header p { color: #d1d5db; }
#rag-chatbot { height: calc(100dvh - 235px) !important; min-height: 320px; }
[data-testid="block-info"] { color: #374151 !important; }
.dark [data-testid="block-info"] { color: #e5e7eb !important; }
textarea::placeholder, input::placeholder { color: #595f69 !important; opacity: 1 !important; }
.dark textarea::placeholder, .dark input::placeholder { color: #b6bcc6 !important; }
.gradio-container footer:not(.rag-footer) {
  display: none !important;
}
.rag-footer { font-size: .9rem; color: #374151; padding: .5rem 0; text-align: center; }
.rag-footer a { color: #1d4ed8; }
.dark .rag-footer { color: #d1d5db; }
.dark .rag-footer a { color: #93c5fd; }
.rag-answer { line-height: 1.5; }
.rag-answer .rag-text { margin: 0 0 .5rem 0; }
.rag-answer a.rag-ref { font-weight: 600; text-decoration: none; color: #1d4ed8; }
.dark .rag-answer a.rag-ref { color: #93c5fd; }
.rag-answer .rag-notice, .rag-article .rag-notice {
  font-style: italic; color: #374151; margin: .25rem 0; }
.dark .rag-answer .rag-notice, .dark .rag-article .rag-notice { color: #d1d5db; }
.rag-label { font-weight: 600; margin: 0 0 .25rem 0; }
.rag-draft .rag-label { color: #92400e; }
.dark .rag-draft .rag-label { color: #fcd34d; }
h2.rag-sources-title { font-size: 1.05rem !important; margin: .75rem 0 .4rem 0 !important; }
.rag-card { border: 1px solid #d1d5db; border-radius: 8px; padding: .6rem .75rem;
  margin: 0 0 .6rem 0; background: #ffffff; color: #111827; }
.dark .rag-card { background: #111827; color: #f3f4f6; border-color: #4b5563; }
.rag-card h3.rag-headline { font-size: 1rem !important; margin: 0 0 .15rem 0 !important; }
.rag-meta { font-size: .875rem; color: #374151; margin: 0 0 .4rem 0 !important; }
.dark .rag-meta { color: #d1d5db; }
.rag-meta a, a.rag-open { color: #1d4ed8; }
.dark .rag-meta a, .dark a.rag-open { color: #93c5fd; }
blockquote.rag-excerpt { margin: .3rem 0 !important; padding: .2rem .6rem !important;
  border-left: 3px solid #9ca3af !important; color: inherit; font-style: normal; }
mark.rag-quote { background: #fef08a; color: #111827; padding: 0 .1rem; border-radius: 2px; }
.dark mark.rag-quote { background: #854d0e; color: #fefce8; }
mark.rag-quote:focus, .rag-record:focus { outline: 3px solid #2563eb; outline-offset: 2px; }
.rag-n { font-weight: 700; }
.rag-when { font-size: .85em; color: #374151; font-style: italic; }
.dark .rag-when { color: #e5e7eb; }
mark .rag-when { color: #1f2937; }
.dark mark .rag-when { color: #fefce8; }
.rag-actions { margin: .2rem 0 0 0 !important; font-size: .9rem; }
button.rag-copy { border: 1px solid #6b7280; border-radius: 6px; padding: .15rem .6rem;
  background: #f9fafb; color: #111827; cursor: pointer; }
.dark button.rag-copy { background: #1f2937; color: #f9fafb; }
.rag-sr { position: absolute; width: 1px; height: 1px; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; }
.rag-nearest li, .rag-list li { margin: 0 0 .45rem 0; }
.rag-list ul, .rag-nearest { padding-left: 1.1rem; }
.rag-article { max-width: 46rem; line-height: 1.6; }
.rag-article h2 { font-size: 1.35rem; margin: .2rem 0 .3rem 0; }
.rag-article mark.rag-quote { scroll-margin-top: 6rem; }
.rag-stats h2, h2.rag-list-title { font-size: 1.15rem; margin: .2rem 0 .3rem 0; }
.rag-filters-note { margin: 0; font-size: .9rem; color: #374151; }
.dark .rag-filters-note { color: #d1d5db; }
#rag-glue { display: none !important; }
@media (max-width: 640px) {
  .gradio-container { padding: 2px 0 !important; }
  .gradio-container .main { padding-left: 6px !important; padding-right: 6px !important; }
  #rag-header { margin-top: -8px; }
  #rag-header h1 { font-size: 1.15rem; }
  #rag-header p { display: none; }
  #rag-chatbot { height: calc(100dvh - 212px) !important; min-height: 300px; }
  .rag-footer { font-size: .85rem; }
  .rag-card { padding: .5rem .55rem; }
  #rag-chatbot .message-row { padding-left: 6px !important; padding-right: 6px !important; }
  #rag-chatbot .message-row > .role > .message { padding-left: 4px !important;
    padding-right: 4px !important; }
}
</style>
"""

JS = r"""
if (!window.__ragChat) {
  window.__ragChat = true;
  const root = () => document.querySelector('gradio-app') || document;
  const qsa = (sel) => Array.from(document.querySelectorAll(sel));

  function quoteText(mark) {
    const copy = mark.cloneNode(true);
    copy.querySelectorAll('.rag-when, .rag-n').forEach((e) => e.remove());
    return copy.textContent.replace(/\s+/g, ' ').trim();
  }

  function plainText(answer) {
    const prose = Array.from(answer.querySelectorAll(':scope > .rag-text'))
      .map((p) => p.innerText.trim()).join('\n\n');
    const notes = Array.from(answer.querySelectorAll(':scope > .rag-notice'))
      .map((p) => p.innerText.trim());
    let out = prose + (notes.length ? '\n\n' + notes.join('\n') : '');
    const cards = answer.querySelectorAll('.rag-card');
    if (cards.length) {
      out += '\n\nSources';
      cards.forEach((card) => {
        const head = card.querySelector('.rag-headline').innerText.trim();
        const meta = card.querySelector('.rag-meta');
        const details = meta ? Array.from(meta.querySelectorAll('span, time'))
          .map((e) => e.innerText.trim()).filter(Boolean).join(', ') : '';
        const link = card.querySelector('a.rag-link');
        card.querySelectorAll('mark.rag-quote, .rag-record').forEach((q) => {
          const n = (q.id.match(/-q(\d+)$/) || [])[1] || '?';
          const said = q.tagName === 'MARK' ? ' “' + quoteText(q) + '”' : '';
          out += '\n[' + n + '] ' + head + (details ? ' (' + details + ')' : '') +
            (link ? ' ' + link.href : '') + said;
        });
      });
    }
    const nearest = answer.querySelectorAll('.rag-nearest li');
    if (nearest.length) {
      out += '\n\nClosest articles in the archive';
      nearest.forEach((li) => { out += '\n- ' + li.innerText.replace(/\s+/g, ' ').trim(); });
    }
    return out.trim();
  }

  async function copyText(text) {
    try { await navigator.clipboard.writeText(text); return true; } catch (e) {
      const area = document.createElement('textarea');
      area.value = text; document.body.appendChild(area); area.select();
      const ok = document.execCommand('copy'); area.remove(); return ok;
    }
  }

  window.__ragOpenArticle = null;  // set by the opener component below
  document.addEventListener('click', (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const ref = target.closest('a.rag-ref');
    if (ref) {
      const id = decodeURIComponent(ref.getAttribute('href').slice(1));
      const quote = document.getElementById(id);
      if (quote) {
        event.preventDefault();
        const card = quote.closest('details');
        if (card) card.open = true;
        quote.scrollIntoView({ block: 'center' });
        quote.focus({ preventScroll: true });
      }
      return;
    }
    const open = target.closest('a.rag-open');
    if (open && window.__ragOpenArticle) {
      event.preventDefault();
      const id = decodeURIComponent(open.getAttribute('href').replace(/^#article=/, ''));
      const card = open.closest('.rag-card');
      const quotes = card ? Array.from(card.querySelectorAll('mark.rag-quote')).map(quoteText) : [];
      window.__ragOpenArticle(JSON.stringify({ article_id: id, quotes: quotes }));
      return;
    }
    const copy = target.closest('button.rag-copy');
    if (copy) {
      const answer = copy.closest('.rag-answer');
      if (!answer) return;
      copyText(plainText(answer)).then((ok) => {
        copy.textContent = ok ? 'Copied' : 'Copy failed';
        setTimeout(() => { copy.textContent = 'Copy answer'; }, 2000);
      });
    }
  }, true);
  window.__ragPlainText = plainText;

  // Gradio labels each message with its raw source (HTML); a reader needs none of it.
  function tidy() {
    const box = document.querySelector('#rag-question textarea');
    if (box && box.getAttribute('aria-label') !== 'Question') {
      box.setAttribute('aria-label', 'Question');
    }
    qsa('#rag-chatbot [aria-label^="bot\'s message"], #rag-chatbot [aria-label^="user\'s message"]')
      .forEach((e) => e.removeAttribute('aria-label'));
    qsa('button:not([aria-label])').forEach((b) => {
      if (!b.innerText.trim() && b.title) b.setAttribute('aria-label', b.title);
    });
    qsa('#rag-chatbot button:not([aria-label])').forEach((b) => {
      if (!b.innerText.trim()) b.setAttribute('aria-label', 'Chat control');
    });
  }

  // A new answer opens at its top: once its final form (which has an id) is on the page,
  // scroll the chat so that its first line is at the top; a draft is followed at the bottom.
  let lastAnswer = null;
  let lastDraft = null;
  function scrollToNewAnswer() {
    const box = document.querySelector('#rag-chatbot [role="log"]');
    if (!box) return;
    const drafts = box.querySelectorAll('.rag-draft');
    const draft = drafts.length ? drafts[drafts.length - 1] : null;
    if (draft && draft !== lastDraft) {
      lastDraft = draft;
      box.scrollTop = box.scrollHeight;
    }
    const finals = box.querySelectorAll('.rag-answer[id]');
    const last = finals.length ? finals[finals.length - 1] : null;
    if (last && last.id !== lastAnswer) {
      lastAnswer = last.id;
      const message = last.closest('.message-row') || last;
      box.scrollTop += message.getBoundingClientRect().top - box.getBoundingClientRect().top - 4;
    }
  }

  new MutationObserver(() => { tidy(); scrollToNewAnswer(); })
    .observe(document.body, { childList: true, subtree: true });
  tidy();
}
"""

# The opener's own script: hand the page script a way to ask the server for an article.
OPENER_JS = r"""
window.__ragOpenArticle = (request) => { props.value = request; trigger('click'); };
"""

# After the article view renders: bring its first highlighted passage into view. The Article
# tab may mount only when first shown, with the article already in it, so also on load.
ARTICLE_JS = r"""
const reveal = () => setTimeout(() => {
  const first = element.querySelector('mark.rag-quote');
  const body = element.querySelector('.rag-article-body');
  if (first) first.scrollIntoView({ block: 'center' });
  else if (body) element.scrollIntoView({ block: 'start' });
}, 250);
watch('value', reveal);
reveal();
"""
