#!/usr/bin/env bash
# Regenerates the committed Office fixtures of crates/zhiku-ingest/tests/fixtures/office from real
# content (chapter 4 of the Debian Reference, en and zh-cn) with the real writers: pandoc and
# LibreOffice. Not run by the tests; run it by hand when a fixture has to change.
#   needs: apt-get install pandoc qpdf libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui
#          and scripts/test.sh having fetched debian-reference into ~/.cache/zhiku/debian-reference
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/crates/zhiku-ingest/tests/fixtures/office"
pdf_out="$root/crates/zhiku-ingest/tests/fixtures/pdf"
ref="${ZHIKU_TEST_DEBIAN_REFERENCE:-$HOME/.cache/zhiku/debian-reference/usr/share/debian-reference}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out" "$pdf_out"
soffice_to() { # format file: LibreOffice conversion into $work
    timeout 180 soffice --headless -env:UserInstallation="file://$work/profile" --convert-to "$1" --outdir "$work" "$2" >/dev/null
}

# Word and Writer: one chapter, as pandoc writes DOCX and as LibreOffice writes ODT and DOCX.
pandoc -f html -t docx "$ref/ch04.en.html" -o "$out/debian-reference-ch04.en.docx" 2>/dev/null
soffice_to odt "$out/debian-reference-ch04.en.docx"
cp "$work/debian-reference-ch04.en.odt" "$out/"
pandoc -f html -t odt "$ref/ch04.zh-cn.html" -o "$work/zh.odt" 2>/dev/null
soffice_to docx "$work/zh.odt"
cp "$work/zh.docx" "$out/debian-reference-ch04.zh-cn.docx"
# The same chapter as LibreOffice exports it to PDF: its CJK text comes through /ActualText.
soffice_to pdf "$out/debian-reference-ch04.zh-cn.docx"
cp "$work/debian-reference-ch04.zh-cn.pdf" "$pdf_out/"

# Calc/Excel: a workbook with formulas, dates, percentages and two sheets, saved by LibreOffice
# as XLSX and ODS (both keep the formulas and their computed values).
cat > "$work/packages.fods" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
 xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"
 xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"
 xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0"
 xmlns:number="urn:oasis:names:tc:opendocument:xmlns:datastyle:1.0"
 xmlns:of="urn:oasis:names:tc:opendocument:xmlns:of:1.2"
 office:version="1.3" office:mimetype="application/vnd.oasis.opendocument.spreadsheet">
 <office:automatic-styles>
  <number:date-style style:name="isodate"><number:year number:style="long"/><number:text>-</number:text><number:month number:style="long"/><number:text>-</number:text><number:day number:style="long"/></number:date-style>
  <number:percentage-style style:name="pct"><number:number number:decimal-places="0" number:min-integer-digits="1"/><number:text>%</number:text></number:percentage-style>
  <style:style style:name="cdate" style:family="table-cell" style:data-style-name="isodate"/>
  <style:style style:name="cpct" style:family="table-cell" style:data-style-name="pct"/>
 </office:automatic-styles>
 <office:body><office:spreadsheet>
  <table:table table:name="Packages">
   <table:table-row><table:table-cell office:value-type="string"><text:p>Package</text:p></table:table-cell><table:table-cell office:value-type="string"><text:p>Installed size (KiB)</text:p></table:table-cell><table:table-cell office:value-type="string"><text:p>Last upgrade</text:p></table:table-cell><table:table-cell office:value-type="string"><text:p>Share</text:p></table:table-cell></table:table-row>
   <table:table-row><table:table-cell office:value-type="string"><text:p>aptitude</text:p></table:table-cell><table:table-cell office:value-type="float" office:value="4194"/><table:table-cell table:style-name="cdate" office:value-type="date" office:date-value="2023-02-04"/><table:table-cell table:style-name="cpct" table:formula="of:=[.B2]/[.B5]" office:value-type="percentage"/></table:table-row>
   <table:table-row><table:table-cell office:value-type="string"><text:p>debian-reference-en</text:p></table:table-cell><table:table-cell office:value-type="float" office:value="2260"/><table:table-cell table:style-name="cdate" office:value-type="date" office:date-value="2024-06-15"/><table:table-cell table:style-name="cpct" table:formula="of:=[.B3]/[.B5]" office:value-type="percentage"/></table:table-row>
   <table:table-row><table:table-cell office:value-type="string"><text:p>tesseract-ocr</text:p></table:table-cell><table:table-cell office:value-type="float" office:value="1546"/><table:table-cell table:style-name="cdate" office:value-type="date" office:date-value="2025-11-30"/><table:table-cell table:style-name="cpct" table:formula="of:=[.B4]/[.B5]" office:value-type="percentage"/></table:table-row>
   <table:table-row><table:table-cell office:value-type="string"><text:p>Total</text:p></table:table-cell><table:table-cell table:formula="of:=SUM([.B2:.B4])" office:value-type="float"/></table:table-row>
  </table:table>
  <table:table table:name="维护者">
   <table:table-row><table:table-cell office:value-type="string"><text:p>软件包</text:p></table:table-cell><table:table-cell office:value-type="string"><text:p>维护者</text:p></table:table-cell></table:table-row>
   <table:table-row><table:table-cell office:value-type="string"><text:p>debian-reference-zh-cn</text:p></table:table-cell><table:table-cell office:value-type="string"><text:p>青木修</text:p></table:table-cell></table:table-row>
  </table:table>
 </office:spreadsheet></office:body>
</office:document>
XML
soffice_to xlsx "$work/packages.fods"
soffice_to ods "$work/packages.fods"
cp "$work/packages.xlsx" "$work/packages.ods" "$out/"
# The workbook as a PDF, and that PDF encrypted: with a user password (unreadable without it)
# and with an owner password only (readable by anyone, as viewers do).
soffice_to pdf "$out/packages.ods"
cp "$work/packages.pdf" "$pdf_out/"
qpdf --encrypt user-secret owner-secret 256 -- "$pdf_out/packages.pdf" "$pdf_out/packages-password.pdf"
qpdf --encrypt "" owner-secret 256 -- "$pdf_out/packages.pdf" "$pdf_out/packages-owner-only.pdf"

# PowerPoint and Impress: slides with a table and speaker notes, as pandoc writes PPTX and as
# LibreOffice writes ODP.
cat > "$work/slides.md" <<'MD'
---
title: Authentication in Debian
---

# PAM and NSS

- PAM decides how a user proves who they are
- NSS maps names to numeric IDs

::: notes
Mention that /etc/pam.d holds one file per service.
:::

# Password files

| File | Content |
|------|---------|
| /etc/passwd | user account information |
| /etc/shadow | secure user account information |

::: notes
Only root may read /etc/shadow.
:::
MD
pandoc "$work/slides.md" -o "$out/authentication.pptx"
soffice_to odp "$out/authentication.pptx"
cp "$work/authentication.odp" "$out/"
ls -l "$out"
