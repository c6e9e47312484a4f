// The line protocol as the page needs it: splitting lines, message bodies
// written on one line (as the terminal client does), names.

export const ROOM = /^#[a-z0-9_-]{1,32}$/;
export const USERNAME = /^[A-Za-z0-9_.-]{1,32}$/;

export function isRoom(target) {
  return target.startsWith("#");
}

/** The fields of a line; the last of `count` fields keeps any "|". */
export function fields(line, count) {
  const parts = line.split("|");
  if (count === undefined || parts.length <= count) return parts;
  return [...parts.slice(0, count - 1), parts.slice(count - 1).join("|")];
}

/** A multi-line text on one line: "\\" as "\\\\", a newline as "\\n". */
export function escapeBody(text) {
  return text.replace(/\\/g, "\\\\").replace(/\r?\n/g, "\\n");
}

export function unescapeBody(body) {
  let out = "";
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === "\\" && i + 1 < body.length && (body[i + 1] === "n" || body[i + 1] === "\\")) {
      out += body[i + 1] === "n" ? "\n" : "\\";
      i++;
    } else {
      out += c;
    }
  }
  return out;
}

/** A value safe inside a field: no "|", no control characters. */
export function cleanField(value) {
  // eslint-disable-next-line no-control-regex
  return value.replace(/[|\u0000-\u001f\u007f-\u009f]/g, " ");
}

/** A fresh SEND client id: random, so ids of different tabs never meet. */
export function newClientId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return "w" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
