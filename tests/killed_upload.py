"""One upload through the web app's API in a process that kills itself at one chosen moment
(``tests/test_faults.py``): a web process that dies in the middle of a submit.

    python -m tests.killed_upload MOMENT SIGNAL VIDEO

MOMENT and SIGNAL as in ``tests.at_a_moment`` (MODULE:CLASS.METHOD: right after its first
call returned). The app is the real one (``web.create_app``) with the farm its environment
names, called in this process through Flask's test client; the bootstrap token
``VIDFARM_API_TOKEN`` authorises the upload. Printed if it was not killed: the answer.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.at_a_moment import AtAMoment, action


def main(moment: str, what: str, video: Path) -> None:
    sys.meta_path.insert(0, AtAMoment(moment, action(what)))
    from core.settings import get_settings
    from web import create_app

    app = create_app(get_settings())
    with video.open("rb") as fh:
        answer = app.test_client().post("/api/v1/jobs", data={"file": (fh, video.name)},
                                        headers={"Authorization": f"Bearer {get_settings().api_token}"},
                                        content_type="multipart/form-data")
    print(answer.status_code, answer.get_json())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
