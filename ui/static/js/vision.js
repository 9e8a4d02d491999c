// Vision: an image from drag-and-drop, a file, or a webcam frame, plus a question about it.

import { answerCard, userCard } from "./answers.js";
import { $, el, fileToBase64 } from "./util.js";

const MAX_SIDE = 1024; // webcam frames are scaled down to what the intent accepts

export function initVision(ctx) {
  const drop = $("#drop");
  const preview = $("#vision-preview");
  const video = $("#webcam");
  const log = $("#vision-log");
  let image = null; // {b64, url}
  let stream = null;

  function setImage(blob) {
    if (!blob || !blob.type.startsWith("image/")) { ctx.notify("that is not an image"); return; }
    if (image) URL.revokeObjectURL(image.url);
    image = { blob, url: URL.createObjectURL(blob) };
    preview.src = image.url;
    preview.hidden = false;
  }

  $("#vision-choose").addEventListener("click", () => $("#vision-file").click());
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const f = e.dataTransfer.files[0];
    if (f) setImage(f);
  });
  $("#vision-file").addEventListener("change", (e) => { if (e.target.files[0]) setImage(e.target.files[0]); });
  document.addEventListener("paste", (e) => {
    if (ctx.currentTab() !== "vision") return;
    const item = [...(e.clipboardData?.items || [])].find((i) => i.type.startsWith("image/"));
    if (item) setImage(item.getAsFile());
  });

  async function webcam(on) {
    if (on) {
      try {
        stream = await navigator.mediaDevices.getUserMedia({ video: true });
      } catch (err) { ctx.notify(`no webcam: ${err.message}`); return; }
      video.srcObject = stream;
      video.hidden = false;
      $("#webcam-snap").disabled = false;
      $("#webcam-toggle").textContent = "Webcam off";
      $("#webcam-toggle").setAttribute("aria-pressed", "true");
    } else {
      stream?.getTracks().forEach((t) => t.stop());
      stream = null;
      video.hidden = true;
      $("#webcam-snap").disabled = true;
      $("#webcam-toggle").textContent = "Webcam on";
      $("#webcam-toggle").setAttribute("aria-pressed", "false");
    }
  }

  async function capture() {
    if (!stream || !video.videoWidth) return null;
    const scale = Math.min(1, MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
    const c = el("canvas", { width: Math.round(video.videoWidth * scale), height: Math.round(video.videoHeight * scale) });
    c.getContext("2d").drawImage(video, 0, 0, c.width, c.height);
    const blob = await new Promise((r) => c.toBlob(r, "image/jpeg", 0.9));
    setImage(blob);
    return blob;
  }

  $("#webcam-toggle").addEventListener("click", () => webcam(!stream));
  $("#webcam-snap").addEventListener("click", capture);

  async function send(prompt = $("#vision-prompt").value) {
    if (stream) await capture(); // a live camera means "look now"
    if (!image) { ctx.notify("drop, choose or capture an image first"); return; }
    prompt = prompt.trim() || "Describe this image.";
    userCard(log, prompt, el("img", { src: image.url, alt: "" }));
    const { handlers } = answerCard(log, { kind: "vision", onDone: (r, text) => { if (r && $("#speak-answers").checked) ctx.speak(text); } });
    const image_b64 = await fileToBase64(image.blob);
    ctx.track(ctx.socket.submit({ kind: "vision", prompt, image_b64 }, handlers), "vision");
  }

  $("#vision-send").addEventListener("click", () => send());
  ctx.onSend("vision", () => send());
  return { send };
}
