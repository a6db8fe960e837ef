"""Label file readers and writers (SPEC 6): real layouts, round trips, errors naming file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sedlib.data.formats import (
    audioset_filename,
    audioset_mid_to_name,
    events_by_file,
    read_audioset_durations_csv,
    read_audioset_strong_tsv,
    read_durations_tsv,
    read_strong_tsv,
    read_weak_tsv,
    write_durations_tsv,
    write_strong_tsv,
    write_weak_tsv,
)
from sedlib.data.labels import (
    Event,
    audioset_strong_classes,
    audioset_strong_eval_classes,
    desed_classes,
)
from sedlib.errors import FormatError, UnknownClassError

# Exactly Google's layout (audioset_eval_strong.tsv), including a YouTube id containing "_".
AUDIOSET_TSV = (
    "segment_id\tstart_time_seconds\tend_time_seconds\tlabel\n"
    "--4gqARaEJE_0\t0.000\t10.000\t/m/068hy\n"
    "--4gqARaEJE_0\t3.201\t4.560\t/m/05tny_\n"
    "a_b-cdEFghi_30000\t1.500\t2.000\t/m/09x0r\n"
)
DESED_TSV = (
    "filename\tonset\toffset\tevent_label\n"
    "Y00pbt6aJV8Y_350.000_360.000.wav\t0.0\t9.971\tVacuum_cleaner\n"
    "Y01gtdbk3Zp0_30.000_40.000.wav\t\t\t\n"
    "Y00pbt6aJV8Y_350.000_360.000.wav\t1.25\t2.5\tDog\n"
    "\n"
)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- AudioSet -----------------------------------------------------------------------------------

def test_audioset_filename_mapping():
    assert audioset_filename("--4gqARaEJE_0") == "Y--4gqARaEJE.mp3"
    assert audioset_filename("a_b-cdEFghi_30000", ".wav") == "Ya_b-cdEFghi.wav"
    assert audioset_filename("--4gqARaEJE_0", "") == "Y--4gqARaEJE"
    for bad in ("--4gqARaEJE", "--4gqARaEJE_", "_30000", "--4gqARaEJE_3.5"):
        with pytest.raises(ValueError, match="<ytid>_<start_ms>"):
            audioset_filename(bad)


def test_mid_to_name_covers_all_strong_classes():
    mids = audioset_mid_to_name()
    assert len(mids) == 456 and len(set(mids.values())) == 456
    assert mids["/m/09x0r"] == "Speech" and mids["/m/012ndj"] == "Fire engine, fire truck (siren)"
    assert set(mids.values()) == set(audioset_strong_classes()) | set(audioset_strong_eval_classes())
    mids.clear()  # callers get a copy
    assert len(audioset_mid_to_name()) == 456


def test_read_audioset_strong_tsv(tmp_path):
    clips = read_audioset_strong_tsv(_write(tmp_path, "audioset_eval_strong.tsv", AUDIOSET_TSV))
    assert list(clips) == ["Y--4gqARaEJE.mp3", "Ya_b-cdEFghi.mp3"]
    assert clips["Y--4gqARaEJE.mp3"] == [
        Event("Y--4gqARaEJE.mp3", 0.0, 10.0, "Domestic animals, pets"),
        Event("Y--4gqARaEJE.mp3", 3.201, 4.56, "Bark"),
    ]
    assert clips["Ya_b-cdEFghi.mp3"] == [Event("Ya_b-cdEFghi.mp3", 1.5, 2.0, "Speech")]
    assert list(read_audioset_strong_tsv(tmp_path / "audioset_eval_strong.tsv", ext="")) == [
        "Y--4gqARaEJE", "Ya_b-cdEFghi",
    ]


def test_read_audioset_strong_comma_and_present_column(tmp_path):
    # the reference's metadata CSV: same columns, comma-separated
    csv_text = AUDIOSET_TSV.replace("\t", ",")
    assert read_audioset_strong_tsv(_write(tmp_path, "s.csv", csv_text)) == read_audioset_strong_tsv(
        _write(tmp_path, "s.tsv", AUDIOSET_TSV)
    )
    framed = (
        "segment_id\tstart_time_seconds\tend_time_seconds\tlabel\tpresent\n"
        "--4gqARaEJE_0\t0.000\t0.960\t/m/05tny_\tPRESENT\n"
        "--4gqARaEJE_0\t0.000\t0.960\t/m/09x0r\tNOT_PRESENT\n"
        "Y1234567890_0\t0.000\t0.960\t/m/09x0r\tNOT_PRESENT\n"
    )
    clips = read_audioset_strong_tsv(_write(tmp_path, "framed.tsv", framed))
    key = "Y--4gqARaEJE.mp3"
    assert clips == {key: [Event(key, 0.0, 0.96, "Bark")], "YY1234567890.mp3": []}
    bad = _write(tmp_path, "framed_bad.tsv", framed.replace("NOT_PRESENT", "maybe", 1))
    with pytest.raises(FormatError, match=r"framed_bad\.tsv:3: expected PRESENT or NOT_PRESENT"):
        read_audioset_strong_tsv(bad)


def test_audioset_unknown_mid_and_vocab(tmp_path):
    text = AUDIOSET_TSV + "--4gqARaEJE_0\t1.0\t2.0\t/m/not_a_mid\n"
    path = _write(tmp_path, "unknown.tsv", text)
    with pytest.raises(UnknownClassError, match=r"unknown\.tsv:5: unknown AudioSet MID '/m/not_a_mid'"):
        read_audioset_strong_tsv(path)
    clips = read_audioset_strong_tsv(path, skip_unknown=True)
    assert sum(len(v) for v in clips.values()) == 3
    # /m/028v0c = Silence, an eval-only class: not in the 447 training vocabulary
    path = _write(tmp_path, "silence.tsv", AUDIOSET_TSV + "--4gqARaEJE_0\t1.0\t2.0\t/m/028v0c\n")
    clips = read_audioset_strong_tsv(path, vocab=audioset_strong_eval_classes())
    assert clips["Y--4gqARaEJE.mp3"][-1].label == "Silence"
    with pytest.raises(UnknownClassError, match=r"silence\.tsv:5: unknown class 'Silence'"):
        read_audioset_strong_tsv(path, vocab=audioset_strong_classes())
    kept = read_audioset_strong_tsv(path, vocab=audioset_strong_classes(), skip_unknown=True)
    assert [e.label for e in kept["Y--4gqARaEJE.mp3"]] == ["Domestic animals, pets", "Bark"]


def test_audioset_two_segments_of_one_video_collide(tmp_path):
    path = _write(tmp_path, "dup.tsv", AUDIOSET_TSV + "--4gqARaEJE_20000\t1.0\t2.0\t/m/09x0r\n")
    with pytest.raises(FormatError, match=r"dup\.tsv:5: .*'--4gqARaEJE_0' \(line 2\)"):
        read_audioset_strong_tsv(path)


def test_audioset_bad_segment_id(tmp_path):
    path = _write(tmp_path, "seg.tsv", AUDIOSET_TSV + "noStartMs\t1.0\t2.0\t/m/09x0r\n")
    with pytest.raises(FormatError, match=r"seg\.tsv:5: .*<ytid>_<start_ms>"):
        read_audioset_strong_tsv(path)


def test_read_audioset_durations_csv(tmp_path):
    path = _write(tmp_path, "eval_durations.csv", "YYd10enP9ykM,10.0\nYa_b-cdEFghi,7.5\n")
    assert read_audioset_durations_csv(path) == {"YYd10enP9ykM.mp3": 10.0, "Ya_b-cdEFghi.mp3": 7.5}
    assert read_audioset_durations_csv(path, ext="") == {"YYd10enP9ykM": 10.0, "Ya_b-cdEFghi": 7.5}
    header = _write(tmp_path, "with_header.csv", "filename,duration\nYYd10enP9ykM,10.0\n")
    with pytest.raises(FormatError, match=r"with_header\.csv:1: expected a number of seconds for duration"):
        read_audioset_durations_csv(header)


def test_shipped_eval_durations_file():
    path = Path(__file__).resolve().parents[1] / "data" / "audioset" / "eval_durations.csv"
    durations = read_audioset_durations_csv(path, ext="")
    assert len(durations) == 16935
    assert 1.0 <= min(durations.values()) and max(durations.values()) <= 10.01
    assert sum(d < 10.0 for d in durations.values()) == 1755


# --- DESED, weak, durations ---------------------------------------------------------------------

def test_read_strong_tsv_keeps_clips_without_events(tmp_path):
    clips = read_strong_tsv(_write(tmp_path, "valid.tsv", DESED_TSV), vocab=desed_classes())
    a, b = "Y00pbt6aJV8Y_350.000_360.000.wav", "Y01gtdbk3Zp0_30.000_40.000.wav"
    assert list(clips) == [a, b]
    assert clips[a] == [Event(a, 0.0, 9.971, "Vacuum_cleaner"), Event(a, 1.25, 2.5, "Dog")]
    assert clips[b] == []


def test_read_weak_and_durations_tsv(tmp_path):
    weak = _write(tmp_path, "weak.tsv", "filename\tevent_labels\na.wav\tDog,Speech\nb.wav\t\nc.wav\tCat\n")
    expected = {"a.wav": ["Dog", "Speech"], "b.wav": [], "c.wav": ["Cat"]}
    assert read_weak_tsv(weak, vocab=desed_classes()) == expected
    durs = _write(tmp_path, "durations.tsv", "filename\tduration\r\na.wav\t10.0\r\nb.wav\t9.87\r\n")
    assert read_durations_tsv(durs) == {"a.wav": 10.0, "b.wav": 9.87}


def test_events_by_file():
    evs = [Event("b", 1, 2, "x"), Event("a", 0, 1, "y"), Event("b", 0, 1, "z")]
    assert events_by_file(evs) == {"b": [evs[0], evs[2]], "a": [evs[1]]}
    assert list(events_by_file(evs)) == ["b", "a"]
    assert events_by_file([]) == {}


# --- writers ------------------------------------------------------------------------------------

def test_strong_round_trip(tmp_path):
    clips = {
        "a.wav": [Event("a.wav", 0.0, 1.0000004, "Dog"), Event("a.wav", 0.5, 9.971, "Speech")],
        "empty.wav": [],
        "b.wav": [Event("b.wav", 2.04, 3.0, "Cat")],
    }
    path = tmp_path / "out.tsv"
    write_strong_tsv(path, clips)
    back = read_strong_tsv(path, vocab=desed_classes())
    assert list(back) == list(clips) and back["empty.wav"] == []
    assert back["a.wav"][0].offset == 1.0  # written with 1 us precision
    assert back["a.wav"][1:] == clips["a.wav"][1:] and back["b.wav"] == clips["b.wav"]
    # a flat event list gives the same file minus the event-less clip
    flat = [e for evs in clips.values() for e in evs]
    write_strong_tsv(path, flat)
    assert "empty.wav" not in read_strong_tsv(path)
    assert path.read_text().splitlines()[0] == "filename\tonset\toffset\tevent_label"


def test_weak_and_durations_round_trip(tmp_path):
    weak = {"a.wav": ["Dog", "Speech"], "b.wav": []}
    write_weak_tsv(tmp_path / "weak.tsv", weak)
    assert read_weak_tsv(tmp_path / "weak.tsv") == weak
    durations = {"a.wav": 10.0, "b.wav": 1.234567}
    write_durations_tsv(tmp_path / "d.tsv", durations)
    assert read_durations_tsv(tmp_path / "d.tsv") == durations
    with pytest.raises(ValueError, match="commas"):
        write_weak_tsv(tmp_path / "weak.tsv", {"a.wav": ["Male speech, man speaking"]})


def test_writers_are_atomic(tmp_path):
    path = tmp_path / "labels.tsv"
    write_strong_tsv(path, [Event("a.wav", 0.0, 1.0, "Dog")])
    before = path.read_bytes()
    bad = [Event("a.wav", 0.0, 1.0, "Cat"), Event("b\tc.wav", 0.0, 1.0, "Dog")]
    with pytest.raises(ValueError, match="tabs"):
        write_strong_tsv(path, bad)
    assert path.read_bytes() == before  # old content intact
    with pytest.raises(ValueError, match="offset < onset"):
        write_strong_tsv(path, [Event("a.wav", 2.0, 1.0, "Dog")])
    with pytest.raises(ValueError, match="positive"):
        write_durations_tsv(tmp_path / "d.tsv", {"a.wav": 0.0})
    write_weak_tsv(tmp_path / "w.tsv", {"a.wav": ["Dog"]})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.tsv", "w.tsv"]  # no temp files


# --- malformed rows -----------------------------------------------------------------------------

STRONG_HEAD = "filename\tonset\toffset\tevent_label\n"
GOOD_ROW = "a.wav\t0.0\t1.0\tDog\n"


@pytest.mark.parametrize(
    "row, message",
    [
        ("a.wav\t0.0\t1.0\n", "expected 4 tab-separated columns"),
        ("a.wav\t0.0\t1.0\tDog\textra\n", "expected 4 tab-separated columns"),
        ("a.wav 0.0 1.0 Dog\n", "expected 4 tab-separated columns"),
        ("a.wav\tzero\t1.0\tDog\n", "expected a number of seconds for onset, got 'zero'"),
        ("a.wav\t0.0\tnan\tDog\n", "expected a number of seconds for offset"),
        ("a.wav\t0.0\t\tDog\n", "expected a number of seconds for offset, got ''"),
        ("a.wav\t2.0\t1.0\tDog\n", "expected offset >= onset"),
        ("a.wav\t-0.5\t1.0\tDog\n", "expected a non-negative onset"),
        ("a.wav\t0.0\t1.0\t\n", "expected a class label"),
        ("\t0.0\t1.0\tDog\n", "expected a filename"),
    ],
)
def test_strong_malformed_row(tmp_path, row, message):
    path = _write(tmp_path, "bad.tsv", STRONG_HEAD + GOOD_ROW + "\n" + row + GOOD_ROW)
    with pytest.raises(FormatError) as info:
        read_strong_tsv(path)
    assert str(info.value).startswith(f"{path}:4: ")  # blank line 3 still counts
    assert message in str(info.value)


@pytest.mark.parametrize(
    "text",
    ["", "\n", GOOD_ROW, "filename\tonset\toffset\n" + GOOD_ROW, "filename,onset,offset,event_label\n"],
)
def test_strong_missing_header(tmp_path, text):
    path = _write(tmp_path, "nohead.tsv", text)
    with pytest.raises(FormatError, match=r"nohead\.tsv:1: expected header 'filename\\tonset\\toffset\\tevent_label'"):
        read_strong_tsv(path)


def test_unknown_class_names_file_and_line(tmp_path):
    path = _write(tmp_path, "classes.tsv", STRONG_HEAD + GOOD_ROW + "a.wav\t0.0\t1.0\tdog\n")
    assert len(read_strong_tsv(path)["a.wav"]) == 2  # no vocabulary, no check
    with pytest.raises(UnknownClassError, match=r"classes\.tsv:3: unknown class 'dog'.*desed-10"):
        read_strong_tsv(path, vocab=desed_classes())
    weak = _write(tmp_path, "weak.tsv", "filename\tevent_labels\na.wav\tDog,Sheep\n")
    with pytest.raises(UnknownClassError, match=r"weak\.tsv:2: unknown class 'Sheep'"):
        read_weak_tsv(weak, vocab=desed_classes())


@pytest.mark.parametrize(
    "reader, text, line, message",
    [
        (read_weak_tsv, "filename\tevent_labels\na.wav\tDog\ta\n", 2, "expected 2 tab-separated columns"),
        (read_weak_tsv, "filename\tevent_labels\na.wav\tDog,,Cat\n", 2, "expected a class label"),
        (read_weak_tsv, "filename\tevent_labels\na.wav\tDog\na.wav\tCat\n", 3, "listed twice (first on line 2)"),
        (read_weak_tsv, "filename\tlabels\na.wav\tDog\n", 1, "expected header"),
        (read_durations_tsv, "filename\tduration\na.wav\tten\n", 2, "expected a number of seconds for duration"),
        (read_durations_tsv, "filename\tduration\na.wav\t-1\n", 2, "expected a positive duration"),
        (read_durations_tsv, "filename\tduration\na.wav\t0\n", 2, "expected a positive duration"),
        (read_durations_tsv, "filename\tduration\na.wav\t1\na.wav\t2\n", 3, "listed twice"),
        (read_durations_tsv, "a.wav\t10.0\n", 1, "expected header"),
        (read_audioset_durations_csv, "Yabc,10.0\nYdef\n", 2, "expected 2 ','-separated columns"),
        (read_audioset_durations_csv, "Yabc,10.0\nYdef,inf\n", 2, "expected a number of seconds"),
        (read_audioset_strong_tsv, AUDIOSET_TSV + "--4gqARaEJE_0\t5\t4\t/m/09x0r\n", 5, "expected offset >= onset"),
        (read_audioset_strong_tsv, AUDIOSET_TSV + "--4gqARaEJE_0\t5\t/m/09x0r\n", 5, "expected 4 tab-separated"),
        (read_audioset_strong_tsv, AUDIOSET_TSV[AUDIOSET_TSV.index("\n") + 1:], 1, "expected header"),
    ],
)
def test_other_malformed_rows(tmp_path, reader, text, line, message):
    path = _write(tmp_path, "bad_file.tsv", text)
    with pytest.raises(FormatError) as info:
        reader(path)
    assert str(info.value).startswith(f"{path}:{line}: ") and message in str(info.value)


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes(STRONG_HEAD.encode() + "a.wav\t0\t1\tCaf\xe9\n".encode("latin-1"))
    with pytest.raises(FormatError, match=r"latin1\.tsv:2: expected UTF-8"):
        read_strong_tsv(path)
