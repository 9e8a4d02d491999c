"""OpenAI-compatible audio: /v1/audio/transcriptions (json, text, verbose_json, srt, vtt) and
/v1/audio/speech (mp3 by default like OpenAI; opus, aac, flac, wav, pcm), on the openai blueprint."""

from __future__ import annotations

import trio
from quart import jsonify, request

from .audio_formats import SPEECH_TYPES, AudioFormatError, encode_speech, to_srt, to_vtt
from .intake import run_to_end, ui_state
from .openai_common import DEFAULT_MODEL_NAMES, OpenAIError, final_error, model_of, openai_bp, read_body, submit_intent, user_of

TRANSCRIPT_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
TIMED_FORMATS = ("verbose_json", "srt", "vtt")
OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse")


@openai_bp.post("/audio/transcriptions")
async def audio_transcriptions():
    if not request.content_type or not request.content_type.startswith("multipart/form-data"):
        raise OpenAIError("send multipart/form-data with a file field", param="file")
    files, form = await request.files, await request.form
    f = files.get("file")
    if f is None:
        raise OpenAIError("the file field is required", param="file")
    audio = f.read()
    fmt = form.get("response_format", "json")
    if fmt not in TRANSCRIPT_FORMATS:
        raise OpenAIError(f"response_format must be one of {', '.join(TRANSCRIPT_FORMATS)}", param="response_format")
    params: dict = {}
    if form.get("language"):
        params["language"] = form["language"]
    if fmt in TIMED_FORMATS:
        params["timestamps"] = True
    model = form.get("model")
    ticket = submit_intent({"kind": "transcribe", "audio": audio, "user": "openai", "params": params,
                      "model": None if not model or model in DEFAULT_MODEL_NAMES or model == "whisper-1" else model})
    final = await run_to_end(ui_state(), ticket)
    if final["type"] == "error":
        raise final_error(final)
    text = final.get("text", "")
    if fmt == "text":
        return text, 200, {"Content-Type": "text/plain; charset=utf-8"}
    if fmt == "srt":
        return to_srt(final), 200, {"Content-Type": "text/plain; charset=utf-8"}
    if fmt == "vtt":
        return to_vtt(final), 200, {"Content-Type": "text/vtt; charset=utf-8"}
    if fmt == "verbose_json":
        segments = [{"id": i, "start": s.get("start", 0.0), "end": s.get("end", 0.0), "text": s.get("text", "")}
                    for i, s in enumerate(final.get("segments") or [])]
        return jsonify({"task": "transcribe", "language": final.get("language", params.get("language")),
                        "duration": final.get("duration"), "text": text, "segments": segments})
    return jsonify({"text": text})


@openai_bp.post("/audio/speech")
async def audio_speech():
    body = await read_body()
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise OpenAIError("input must be a non-empty string", param="input")
    fmt = body.get("response_format", "mp3")  # OpenAI's default
    if not isinstance(fmt, str) or fmt not in SPEECH_TYPES:
        raise OpenAIError(f"response_format must be one of {', '.join(SPEECH_TYPES)}", param="response_format")
    if body.get("stream_format") not in (None, "audio"):
        raise OpenAIError("stream_format must be audio on this server", "unsupported_parameter", param="stream_format")
    params = {}
    if isinstance(body.get("voice"), str) and body["voice"] not in OPENAI_VOICES:
        params["voice"] = body["voice"]  # OpenAI's own voice names mean "the default voice" here
    if body.get("speed") is not None:
        params["speed"] = body["speed"]
    model = model_of(body)
    if model in ("tts-1", "tts-1-hd", "gpt-4o-mini-tts"):
        model = None
    ticket = submit_intent({"kind": "speak", "prompt": text, "model": model, "user": user_of(body), "params": params})
    final = await run_to_end(ui_state(), ticket)
    if final["type"] == "error":
        raise final_error(final)
    try:
        # Encoding is CPU work (a few ms per second of audio): keep it off the event loop.
        audio = await trio.to_thread.run_sync(encode_speech, final.get("audio_wav") or b"", fmt)
    except AudioFormatError as e:
        raise OpenAIError(str(e), "bad_audio", 502) from None
    return audio, 200, {"Content-Type": SPEECH_TYPES[fmt]}
