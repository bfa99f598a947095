// The drawing pad of mlplab's pages (mlplab serve's and mlplab studio's): a canvas drawn on with a
// mouse, a pen or a finger, dark ink on white, the way a person writes a digit on paper. Both apps
// serve this one file at /static/pad.js.
"use strict";

// BRUSH px on a 280 px pad: strokes as wide as MNIST's once the drawing is scaled to 28x28.
const PAD_BRUSH = 18;

// Make `pad` (a <canvas>) drawable. `onInk()` is called after every piece of stroke drawn,
// `onStrokeEnd()` when the pointer lifts. Returns {context, reset}: reset() wipes it white.
function drawingPad(pad, { onInk, onStrokeEnd }) {
  const context = pad.getContext("2d");
  let stroke = null; // {id, x, y} while a pointer is down on the pad

  function reset() {
    context.fillStyle = "#fff";
    context.fillRect(0, 0, pad.width, pad.height);
    context.strokeStyle = context.fillStyle = "#111";
    context.lineWidth = PAD_BRUSH;
    context.lineCap = context.lineJoin = "round";
  }

  // A pointer event's position in the canvas's own pixels (its CSS size may differ).
  function at(event) {
    const box = pad.getBoundingClientRect();
    return { x: (event.clientX - box.left) * pad.width / box.width, y: (event.clientY - box.top) * pad.height / box.height };
  }

  pad.addEventListener("pointerdown", (event) => {
    if (event.pointerType === "mouse" && event.button !== 0) return;
    event.preventDefault();
    pad.setPointerCapture(event.pointerId);
    const point = at(event);
    stroke = { id: event.pointerId, ...point };
    context.beginPath();
    context.arc(point.x, point.y, PAD_BRUSH / 2, 0, 2 * Math.PI); // a tap leaves a dot
    context.fill();
    onInk();
  });

  pad.addEventListener("pointermove", (event) => {
    if (!stroke || event.pointerId !== stroke.id) return;
    // Coalesced events: every point a fast pen passed through, not only the last of the frame.
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    context.beginPath();
    context.moveTo(stroke.x, stroke.y);
    for (const each of events.length ? events : [event]) {
      const point = at(each);
      context.lineTo(point.x, point.y);
      stroke.x = point.x; stroke.y = point.y;
    }
    context.stroke();
    onInk();
  });

  function end(event) {
    if (!stroke || event.pointerId !== stroke.id) return;
    stroke = null;
    onStrokeEnd();
  }
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);

  reset();
  return { context, reset };
}
