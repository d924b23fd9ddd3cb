"""Credits, licences and opt-out signals read from files: SVG RDF, XMP (IPTC Core/PLUS), IPTC IIM, EXIF, C2PA,
JSON sidecars. Pure functions over bytes; nothing here touches the database or the network."""

from __future__ import annotations

import io
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

log = logging.getLogger(__name__)

NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "cc": "http://web.resource.org/cc/",
    "cc2": "http://creativecommons.org/ns#",
    "plus": "http://ns.useplus.org/ldf/xmp/1.0/",
    "xmpRights": "http://ns.adobe.com/xap/1.0/rights/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
}
EXIF_ARTIST, EXIF_COPYRIGHT, EXIF_DESCRIPTION = 0x013B, 0x8298, 0x010E
IIM_BYLINE, IIM_COPYRIGHT, IIM_KEYWORDS, IIM_TITLE, IIM_CAPTION = (2, 80), (2, 116), (2, 25), (2, 5), (2, 120)


@dataclass(frozen=True)
class FoundSignal:
    kind: str  # provenance.models.Signal.Kind value
    value: str
    location: str


@dataclass
class WorkMetadata:
    creator: str = ""
    title: str = ""
    description: str = ""
    keywords: list[str] = field(default_factory=list)
    licence: str = ""
    rights: str = ""
    url: str = ""
    signals: list[FoundSignal] = field(default_factory=list)

    def merge(self, other: WorkMetadata) -> None:
        """Fill what is still empty from a less authoritative source; keep every signal."""
        for name in ("creator", "title", "description", "licence", "rights", "url"):
            if not getattr(self, name) and getattr(other, name):
                setattr(self, name, getattr(other, name))
        if not self.keywords:
            self.keywords = list(other.keywords)
        self.signals.extend(s for s in other.signals if s not in self.signals)


def _q(prefix: str, name: str) -> str:
    return f"{{{NS[prefix]}}}{name}"


# `HASH(0x8a0ab9c)`: a Perl reference a broken export printed instead of the value (titles, descriptions).
PLACEHOLDER = re.compile(r"^HASH\(0x[0-9a-f]+\)$", re.IGNORECASE)


def _text(element: Element | None) -> str:
    """All text under an element, whitespace-collapsed: handles `<dc:creator><cc:Agent><dc:title>` and plain text."""
    if element is None:
        return ""
    return " ".join(" ".join(element.itertext()).split())


def _prose(element: Element | None) -> str:
    """Text meant for people (title, description): placeholders read as empty."""
    text = _text(element)
    return "" if PLACEHOLDER.match(text) else text


def _list_items(element: Element | None) -> list[str]:
    if element is None:
        return []
    items = [_text(li) for li in element.iter(_q("rdf", "li"))]
    if not items and _text(element):
        items = [part.strip() for part in _text(element).split(",")]
    return [item for item in items if item]


def _parse_xml(data: bytes | str) -> Element | None:
    try:
        return ElementTree.fromstring(data)
    except (DefusedXmlException, ElementTree.ParseError) as exc:
        log.debug("unreadable XML metadata: %s", exc)
        return None


def svg_metadata(data: bytes) -> WorkMetadata:
    """Creator, title, keywords and licence from an SVG's RDF block (openclipart, Inkscape)."""
    root = _parse_xml(data)
    if root is None:
        return WorkMetadata()
    work = root.find(f".//{_q('cc', 'Work')}")
    if work is None:
        work = root.find(f".//{_q('cc2', 'Work')}")
    if work is None:
        return WorkMetadata(title=_text(root.find(".//{http://www.w3.org/2000/svg}title")))
    licence = work.find(_q("cc", "license"))
    if licence is None:
        licence = work.find(_q("cc2", "license"))
    return WorkMetadata(
        creator=_text(work.find(_q("dc", "creator"))),
        title=_prose(work.find(_q("dc", "title"))),
        description=_prose(work.find(_q("dc", "description"))),
        keywords=_list_items(work.find(_q("dc", "subject"))),
        licence=(licence.get(_q("rdf", "resource"), "") or _text(licence)) if licence is not None else "",
        rights=_text(work.find(_q("dc", "rights"))),
    )


def _xmp_values(root: Element, prefix: str, name: str) -> list[str]:
    """A property written either as an attribute of rdf:Description or as a child element (both are valid XMP)."""
    values = []
    for description in root.iter(_q("rdf", "Description")):
        if (attr := description.get(_q(prefix, name))) is not None:
            values.append(attr)
        for child in description.findall(_q(prefix, name)):
            resource = child.get(_q("rdf", "resource"))
            values.extend([resource] if resource else _list_items(child) or [_text(child)])
    return [v.strip() for v in values if v and v.strip()]


def xmp_metadata(xmp: bytes | str) -> WorkMetadata:
    """IPTC Core / PLUS properties from an XMP packet (JPEG APP1, PNG iTXt, WebP XMP chunk)."""
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    root = _parse_xml(xmp.strip(b"\x00 \r\n\t"))
    if root is None:
        return WorkMetadata()
    first = lambda p, n: next(iter(_xmp_values(root, p, n)), "")  # noqa: E731
    signals = [
        FoundSignal("iptc_data_mining", _dmi_code(value), "XMP plus:DataMining")
        for value in _xmp_values(root, "plus", "DataMining")
    ]
    return WorkMetadata(
        creator="; ".join(_xmp_values(root, "dc", "creator")),
        title=first("dc", "title"),
        description=first("dc", "description"),
        keywords=_xmp_values(root, "dc", "subject"),
        licence=first("xmpRights", "WebStatement") or first("cc2", "license"),
        rights=first("dc", "rights"),
        signals=signals,
    )


def _dmi_code(value: str) -> str:
    """PLUS writes the value as a URI (http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING) or bare code."""
    return value.rstrip("/").rsplit("/", 1)[-1].strip()


def exif_metadata(exif_bytes: bytes) -> WorkMetadata:
    from PIL import Image

    exif = Image.Exif()
    try:
        exif.load(exif_bytes)
    except Exception:  # broken EXIF is common and never fatal
        return WorkMetadata()
    decode = lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v or "")  # noqa: E731
    return WorkMetadata(
        creator=decode(exif.get(EXIF_ARTIST)).strip("\x00 "),
        rights=decode(exif.get(EXIF_COPYRIGHT)).strip("\x00 "),
        description=decode(exif.get(EXIF_DESCRIPTION)).strip("\x00 "),
    )


def iim_metadata(data: bytes) -> WorkMetadata:
    """Legacy IPTC IIM (JPEG APP13): By-line, Copyright Notice, Keywords."""
    from PIL import Image, IptcImagePlugin

    try:
        info = IptcImagePlugin.getiptcinfo(Image.open(io.BytesIO(data))) or {}
    except Exception:
        return WorkMetadata()

    def values(tag: tuple[int, int]) -> list[str]:
        raw = info.get(tag)
        raw = raw if isinstance(raw, list) else [raw] if raw else []
        return [v.decode("utf-8", "replace").strip() for v in raw]

    return WorkMetadata(
        creator="; ".join(values(IIM_BYLINE)),
        rights=next(iter(values(IIM_COPYRIGHT)), ""),
        keywords=values(IIM_KEYWORDS),
        title=next(iter(values(IIM_TITLE)), ""),
        description=next(iter(values(IIM_CAPTION)), ""),
    )


def _c2pa_context():
    """Reader settings: never fetch a remote manifest (ingest is offline and must not make requests)."""
    import c2pa

    return c2pa.Context(c2pa.Settings.from_dict({"verify": {"remote_manifest_fetch": False}}))


def c2pa_signals(data: bytes, mime_type: str) -> list[FoundSignal]:
    """C2PA / CAWG training-and-data-mining assertions of the active manifest, with the signer that made them."""
    if b"c2pa" not in data:  # no JUMBF manifest store: skip the native reader, which is comparatively slow
        return []
    try:
        import c2pa

        with c2pa.Reader(mime_type, io.BytesIO(data), context=_c2pa_context()) as reader:
            store = json.loads(reader.json())
    except Exception as exc:
        log.debug("no readable C2PA manifest: %s", exc)
        return []
    label = store.get("active_manifest")
    manifest = store.get("manifests", {}).get(label, {})
    signer = _c2pa_signer(manifest.get("signature_info") or {})
    untrusted = any("untrusted" in (s.get("code") or "") for s in store.get("validation_status") or [])
    where = f"C2PA manifest {label} signed by {signer}" + (
        " (signer not on a trust list)" if untrusted else ""
    )
    signals = []
    for assertion in manifest.get("assertions", []):
        if not assertion.get("label", "").endswith("training-mining"):
            continue
        for entry, body in (assertion.get("data", {}).get("entries") or {}).items():
            value = json.dumps({entry: body}, sort_keys=True)
            signals.append(
                FoundSignal("c2pa_training_mining", value, f"{assertion['label']} in {where}"[:500])
            )
    return signals


def _c2pa_signer(info: dict) -> str:
    name, organisation = info.get("common_name") or "", info.get("issuer") or ""
    if name and organisation and name != organisation:
        return f"{name} ({organisation})"
    return name or organisation or "an unknown signer"


def sidecar_metadata(image_path: Path) -> WorkMetadata:
    """`work.png.json` or `work.json` beside the image: {creator|author, title, caption, keywords, licence|license,
    rights, url, data_mining}."""
    for candidate in (image_path.with_name(image_path.name + ".json"), image_path.with_suffix(".json")):
        if candidate.is_file() and not candidate.is_symlink():
            try:
                doc = json.loads(candidate.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                return WorkMetadata()
            return _metadata_from_mapping(doc, location=f"sidecar {candidate.name}")
    return WorkMetadata()


def _metadata_from_mapping(doc: object, *, location: str) -> WorkMetadata:
    if not isinstance(doc, dict):
        return WorkMetadata()
    get = lambda *keys: next((str(doc[k]).strip() for k in keys if doc.get(k)), "")  # noqa: E731
    keywords = doc.get("keywords") or []
    if isinstance(keywords, str):
        keywords = [k.strip() for k in keywords.split(",")]
    signals = []
    if dmi := get("data_mining", "DataMining"):
        signals.append(FoundSignal("iptc_data_mining", _dmi_code(dmi), f"{location} data_mining"))
    return WorkMetadata(
        creator=get("creator", "author", "artist"),
        title=get("title"),
        description=get("caption", "description"),
        keywords=[str(k) for k in keywords if str(k).strip()],
        licence=get("licence", "license"),
        rights=get("rights", "copyright"),
        url=get("url", "source_url"),
        signals=signals,
    )


MIME_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
    "AVIF": "image/avif",
}


def xmp_packet(data: bytes) -> bytes:
    """The XMP packet embedded in a file's bytes, wherever the container keeps it. Pillow hands over XMP for
    JPEG, PNG, WebP and TIFF, but not for GIF (an application extension it reads only the first 255 bytes of)
    or AVIF (an `application/rdf+xml` item); the packet itself is stored uncompressed in all of them."""
    start = data.find(b"<x:xmpmeta")
    end = data.find(b"</x:xmpmeta>", start)
    return data[start : end + len(b"</x:xmpmeta>")] if start >= 0 and end > start else b""


def raster_metadata(data: bytes, image_format: str, info: dict) -> WorkMetadata:
    """Everything a raster file says about itself, most authoritative first: XMP, IPTC IIM, EXIF, C2PA."""
    meta = WorkMetadata()
    xmp = info.get("xmp") or info.get("XML:com.adobe.xmp") or xmp_packet(data)
    if xmp:
        meta.merge(xmp_metadata(xmp))
    if image_format == "JPEG":
        meta.merge(iim_metadata(data))
    if info.get("exif"):
        meta.merge(exif_metadata(info["exif"]))
    if mime := MIME_TYPES.get(image_format):
        meta.signals.extend(c2pa_signals(data, mime))
    return meta
