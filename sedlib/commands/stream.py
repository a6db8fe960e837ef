"""``sedlib stream``: detection on a live source, one JSON line per event as it is decided.

    arecord -f S16_LE -r 16000 -c 1 -t raw | sedlib stream --checkpoint det.onnx
    sedlib stream --input recording-in-progress.wav --hop 1
    sedlib stream --input mic --model fmn10                      # needs sounddevice

Each line is ``{"event_label", "onset", "offset", "state"}`` (seconds from the stream's start):
``"open"`` when an event's first frame is decided (offset null), ``"closed"`` when it ends. On a
file the closed events equal ``sedlib detect --hop H`` on it (:mod:`sedlib.detect.stream`).
"""

from __future__ import annotations

import argparse
import json
import sys

from sedlib.commands import add_backend_arguments

HELP = "detect sound events in a live stream (stdin PCM, a growing WAV, or a microphone)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", default="-",
                        help="'-' raw 16-bit mono PCM on stdin (default), a WAV file (read as it grows), "
                             "or 'mic' (needs sounddevice)")
    parser.add_argument("--rate", type=int, default=16_000, help="sample rate of stdin/mic input (16000)")
    parser.add_argument("--model", default=None, help="model name (default: the checkpoint's, else fmn10+TF:256)")
    parser.add_argument("--checkpoint", help="weights (.safetensors/.pt, a release name, or an exported .onnx)")
    parser.add_argument("--classes", help="class names if the checkpoint does not carry them")
    parser.add_argument("--hop", type=float, default=1.0, help="window hop in seconds (1.0)")
    parser.add_argument("--window", type=float, default=10.0, help="window length in seconds (10)")
    parser.add_argument("--threshold", type=float, default=0.5, help="decision threshold (0.5)")
    parser.add_argument("--median-filter", type=int, default=9, help="median filter frames (9; 1 = off)")
    parser.add_argument("--idle", type=float, default=2.0,
                        help="a WAV input ends when it has not grown for this many seconds (2; 0 = read it once)")
    parser.add_argument("--closed-only", action="store_true", help="print only closed events")
    add_backend_arguments(parser)


def _source(args: argparse.Namespace):
    from sedlib.audio.live import growing_wav_source, microphone_source, pcm_source

    if args.input == "-":
        return pcm_source(rate=args.rate)
    if args.input == "mic":
        return microphone_source(args.rate)
    return growing_wav_source(args.input, idle_seconds=args.idle)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from sedlib.detect.detector import Detector, load_detector_model
    from sedlib.detect.stream import StreamDetector, stream_events
    from sedlib.errors import SedlibError

    if not 0.0 <= args.threshold <= 1.0:
        raise SedlibError(f"--threshold must be in [0, 1], got {args.threshold}")
    source = _source(args)  # bad input fails before the model loads
    name = args.model or (None if args.checkpoint else "fmn10+TF:256")
    model, vocab = load_detector_model(name, args.checkpoint, args.classes, args.backend, args.threads)
    detector = Detector(model, vocab, window_seconds=args.window, hop_seconds=args.hop, batch_size=1)
    state = StreamDetector(detector, threshold=args.threshold, median_filter=args.median_filter)
    closed = 0
    try:
        for record in stream_events(source, detector, state=state):
            closed += record["state"] == "closed"
            if record["state"] == "closed" or not args.closed_only:
                sys.stdout.write(json.dumps(record) + "\n")
                sys.stdout.flush()
    except KeyboardInterrupt:  # a live source is stopped with Ctrl-C: close what is open
        for record in state.finish():
            closed += record["state"] == "closed"
            sys.stdout.write(json.dumps(record) + "\n")
    except BrokenPipeError:  # the reader went away (e.g. `| head`)
        sys.stderr.close()
        return 0
    if state.seconds == 0:
        raise SedlibError(f"{source.name}: no audio received")
    lat = np.array(state.latencies or [0.0]) * 1e3
    print(f"{state.seconds:.1f} s of audio, {closed} event(s); latency per window p50 {np.median(lat):.0f} ms, "
          f"p95 {np.percentile(lat, 95):.0f} ms, real-time factor {state.compute_seconds / state.seconds:.3f} "
          f"(events are decided {args.window:g}-{args.window + args.hop:g} s after they start)", file=sys.stderr)
    return 0
