//! JavaScript evaluated in pages. Each is an expression; arguments are spliced in as
//! JSON literals by [`call`], so no page value is ever parsed as code.

use serde_json::Value;

/// `(function)(arg, ...)` with each argument written as a JSON literal.
pub fn call(function: &str, args: &[Value]) -> String {
    let args: Vec<String> = args.iter().map(Value::to_string).collect();
    format!("({function})({})", args.join(","))
}

/// The page's geometry and identity, as `WebpageMetadata` needs it. Falls back to the
/// viewport with no scroll when the document has no body yet.
pub const METADATA: &str = r#"(() => {
  const d = document.documentElement, b = document.body;
  const sw = Math.max(d ? d.scrollWidth : 0, b ? b.scrollWidth : 0, innerWidth);
  const sh = Math.max(d ? d.scrollHeight : 0, b ? b.scrollHeight : 0, innerHeight);
  return {url: location.href, title: document.title, screen_size: [innerWidth, innerHeight],
          page_size: [sw, sh], scroll_position: [Math.round(scrollX), Math.round(scrollY)],
          ready: document.readyState};
})()"#;

/// Markdown of the page: `visible_only` keeps what intersects the viewport (the
/// observation's text), otherwise the main content (reader mode, text mode).
pub const MARKDOWN: &str = r#"(visibleOnly, limit) => {
  const skip = new Set(['SCRIPT','STYLE','NOSCRIPT','TEMPLATE','SVG','CANVAS','IFRAME','HEAD']);
  const clutter = new Set(['NAV','FOOTER','ASIDE']);
  const root = visibleOnly ? document.body
    : (document.querySelector('article') || document.querySelector('main') || document.body);
  if (!root) return '';
  const out = [];
  let size = 0;
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth;
  };
  const text = (s) => s.replace(/\s+/g, ' ').trim();
  const push = (line) => { if (line && size < limit) { out.push(line); size += line.length + 1; } };
  const inline = (el) => {
    let s = '';
    for (const n of el.childNodes) {
      if (n.nodeType === 3) s += n.textContent;
      else if (n.nodeType === 1 && !skip.has(n.tagName)) {
        if (n.tagName === 'A' && n.href) s += '[' + text(n.innerText || '') + '](' + n.href + ')';
        else if (n.tagName === 'BR') s += ' ';
        else s += inline(n);
      }
    }
    return s;
  };
  const walk = (el) => {
    if (size >= limit || skip.has(el.tagName)) return;
    if (!visibleOnly && el !== root && clutter.has(el.tagName)) return;
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden') return;
    const tag = el.tagName;
    if (/^H[1-6]$/.test(tag)) { if (!visibleOnly || visible(el)) push('#'.repeat(+tag[1]) + ' ' + text(inline(el))); return; }
    if (tag === 'LI') { if (!visibleOnly || visible(el)) push('- ' + text(inline(el))); return; }
    if (tag === 'INPUT' || tag === 'TEXTAREA') {
      if (!visibleOnly || visible(el)) push('[' + (el.type || 'text') + ' field' + (el.name ? ' ' + el.name : '') + ': ' + (el.type === 'password' ? '***' : el.value) + ']');
      return;
    }
    if (tag === 'SELECT') { if (!visibleOnly || visible(el)) push('[select: ' + [...el.options].map(o => (o.selected ? '*' : '') + o.label).join(' | ') + ']'); return; }
    if (tag === 'BUTTON') { if (!visibleOnly || visible(el)) push('[button: ' + text(el.innerText || '') + ']'); return; }
    const blocks = [...el.children].some(c => !['A','SPAN','B','I','EM','STRONG','CODE','SMALL','LABEL','BR','IMG'].includes(c.tagName));
    if (!blocks) {
      const line = text(inline(el));
      if (line && (!visibleOnly || visible(el))) push(line);
      return;
    }
    for (const n of el.childNodes) {
      if (n.nodeType === 1) walk(n);
      else if (n.nodeType === 3 && text(n.textContent) && (!visibleOnly || visible(el))) push(text(n.textContent));
    }
  };
  walk(root);
  return out.join('\n').slice(0, limit);
}"#;

/// Picks `option` (label or value) in the native `<select>` under (x, y), firing the
/// events a user's choice fires.
pub const SELECT_OPTION: &str = r#"(x, y, option) => {
  const el = document.elementFromPoint(x, y);
  const sel = el && (el.tagName === 'SELECT' ? el : el.closest('select'));
  if (!sel) return {error: 'There is no <select> element at (' + x + ', ' + y + ').'};
  const opts = [...sel.options];
  const want = String(option).trim().toLowerCase();
  const o = opts.find(o => o.label.trim() === option || o.value === option)
    || opts.find(o => o.label.trim().toLowerCase() === want || o.value.toLowerCase() === want);
  if (!o) return {error: 'The menu has no option "' + option + '". Its options: ' + opts.map(o => o.label.trim()).join(', ') + '.'};
  sel.focus();
  sel.value = o.value;
  sel.dispatchEvent(new Event('input', {bubbles: true}));
  sel.dispatchEvent(new Event('change', {bubbles: true}));
  return {selected: o.label.trim()};
}"#;

/// Scrolls to the next match of `query` and says whether there was one.
pub const FIND: &str = r#"(query) => {
  const found = window.find(query, false, false, true, false, false, false);
  if (found) {
    const sel = getSelection();
    if (sel.rangeCount) {
      const r = sel.getRangeAt(0).getBoundingClientRect();
      if (r.top < 0 || r.bottom > innerHeight) scrollBy(0, r.top - innerHeight / 3);
    }
  }
  return found;
}"#;

/// Clears the focused field (select all, then delete), whatever kind it is.
pub const CLEAR_FOCUSED: &str = r#"(() => {
  const el = document.activeElement;
  if (!el) return false;
  if ('value' in el) { el.select && el.select(); return true; }
  if (el.isContentEditable) { document.execCommand('selectAll'); return true; }
  return false;
})()"#;

/// The main document's HTTP status (0 when unknown, e.g. `about:blank`) and the start of
/// its text.
pub const HTTP_STATUS: &str = r#"(() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const text = document.body ? document.body.innerText.trim().slice(0, 200) : '';
  return {status: nav && nav.responseStatus ? nav.responseStatus : 0, text};
})()"#;
