// Building DOM nodes. Data only ever reaches the page as text nodes or attribute
// values, never as markup, so a number or name pushed by a PBX cannot inject HTML.

export function el(tag, options = {}, children = []) {
  const node = document.createElement(tag);
  if (options.className) node.className = options.className;
  if (options.text !== undefined && options.text !== null) node.textContent = String(options.text);
  for (const [name, value] of Object.entries(options.attrs ?? {})) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

export function byTestId(id) {
  return document.querySelector(`[data-testid="${id}"]`);
}

// Puts `nodes` into `parent` in order, moving only what moved: rows that stay keep
// their DOM node, so a poll does not reset hover, focus or a text selection.
export function reconcile(parent, nodes) {
  nodes.forEach((node, index) => {
    const current = parent.children[index];
    if (current !== node) parent.insertBefore(node, current ?? null);
  });
  while (parent.children.length > nodes.length) parent.lastElementChild.remove();
}
