// The only way this dashboard builds DOM. Everything that comes from the API (vassal names, log lines, error
// messages) becomes a text node here, so a log line such as `<img src=x onerror=alert(1)>` is shown as those
// characters, never parsed as HTML. There is deliberately no innerHTML anywhere in web/.

const SVG_NS = 'http://www.w3.org/2000/svg';

function setProps(el, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key === 'style' || key === 'innerHTML' || key === 'outerHTML') {
      // The CSP forbids style attributes, and HTML strings are what this module exists to avoid.
      throw new Error(`h(): "${key}" is not allowed`);
    }
    if (key === 'class') el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'text') el.textContent = String(value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

/** Appends children: nodes as they are, anything else (strings, numbers) as a text node. */
export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** h('a', {href: '#/', class: 'x'}, 'text', otherNode) -> an HTML element. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  return append(el, ...children);
}

/** The same for SVG elements (charts). */
export function s(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setProps(el, props);
  return append(el, ...children);
}

/** Replaces all children of el. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, ...children);
}

/** Sets el's text only when it changed (keeps screen readers and selection calm under 1 s updates). */
export function setText(el, text) {
  const t = String(text);
  if (el.textContent !== t) el.textContent = t;
}

/** Rebuilds el's children with build() only when key changed since the last call (keeps text selectable). */
export function replaceIfChanged(el, key, build) {
  if (el.dataset.key === key) return;
  el.dataset.key = key;
  replace(el, build());
}

export const $ = (sel, root = document) => root.querySelector(sel);
