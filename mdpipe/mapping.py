"""Match CSV headers to fields: exact names, synonyms, then the user's overrides.

A header maps automatically when its normalised form (case, spaces and
punctuation ignored) equals a field's name or one of its synonyms. Synonyms
are listed best first: where several headers match one field (Outlook's
"Mobile Phone" and "Business Phone"), the best wins and the others are
reported as ignored, never silently dropped.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from mdpipe.errors import MappingError

CONTACT_FIELDS: dict[str, tuple[str, ...]] = {
    "first_name": (
        "First Name",
        "Given Name",
        "First",
        "Firstname",
        "Forename",
        "FName",
        "Contact First Name",
        "Person First Name",
        # the address-book exports of other locales (Outlook writes its headers localised)
        "Vorname",
        "Prénom",
        "Nombre",
        "Voornaam",
        "Nome",
    ),
    "last_name": (
        "Last Name",
        "Surname",
        "Family Name",
        "Last",
        "Lastname",
        "LName",
        "Contact Last Name",
        "Person Last Name",
        "Nachname",
        "Familienname",
        "Nom",
        "Nom de famille",
        "Apellidos",
        "Apellido",
        "Achternaam",
        "Cognome",
        "Sobrenome",
        "Apelido",
    ),
    "email": (
        "Email",
        "E-mail",
        "Email Address",
        "E-mail Address",
        "Mail",
        "Email 1",
        "E-mail 1 - Value",
        "Email 1 - Value",
        "Primary Email",
        "Work Email",
        "Email - Work",
        "Email - Other",
        "Personal Email",
        "Home Email",
        "E-mail 2 Address",
        "E-mail 2 - Value",
        "E-Mail-Adresse",
        "Adresse e-mail",
        "Adresse de messagerie",
        "Courriel",
        "Correo electrónico",
        "Dirección de correo electrónico",
        "E-mailadres",
        "Indirizzo e-mail",
        "Indirizzo di posta elettronica",
        "Endereço de e-mail",
    ),
    "phone": (
        "Phone",
        "Phone Number",
        "Mobile",
        "Mobile Phone",
        "Mobile Number",
        "Mobile Phone Number",
        "Cell",
        "Cell Phone",
        "Cellphone",
        "Cell Number",
        "SMS",
        "SMS Number",
        "Phone 1 - Value",
        "Phone - Mobile",
        "Primary Phone",
        "Telephone",
        "Tel",
        "Phone - Work",
        "Work Phone",
        "Business Phone",
        "Home Phone",
        "Phone 2 - Value",
        "Other Phone",
        "Mobiltelefon",
        "Handy",
        "Handynummer",
        "Téléphone mobile",
        "Tél. mobile",
        "Portable",
        "Teléfono móvil",
        "Móvil",
        "Celular",
        "Mobiele telefoon",
        "Mobiel",
        "Cellulare",
        "Telemóvel",
        "Telefon",
        "Telefonnummer",
        "Téléphone",
        "Teléfono",
        "Telefoon",
        "Telefoonnummer",
        "Telefono",
        "Telefone",
    ),
    "company": (
        "Company",
        "Company Name",
        "Organization",
        "Organisation",
        "Organization Name",
        "Organization 1 - Name",
        "Organisation Name",
        "Account Name",
        "Account",
        "Business",
        "Employer",
        "Firma",
        "Unternehmen",
        "Société",
        "Entreprise",
        "Empresa",
        "Compañía",
        "Organización",
        "Bedrijf",
        "Azienda",
        "Società",
    ),
}


MESSAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "timestamp": (
        "Date Sent",
        "DateSent",
        "Sent Date",
        "SentDate",
        "Sent At",
        "Sent Time",
        "Sent",
        "Timestamp",
        "Time Stamp",
        "Message Date",
        "Message Time",
        "Datetime",
        "Date Time",
        "Date",
        "When",
        "Time",
        "Created At",
        "Date Created",
        "DateCreated",
        "Received At",
    ),
    "direction": ("Direction", "Message Direction", "In/Out", "Inbound/Outbound", "Type"),
    "phone": (
        "Phone",
        "Phone Number",
        "Contact Phone",
        "Contact Number",
        "Number",
        "Participants",
        "Participant",
        "Recipients",
        "Contact",
        "Mobile",
        "Customer Phone",
    ),
    "text": ("Text", "Body", "Message", "Message Body", "Message Text", "Content", "SMS", "Msg"),
    "channel": (
        "Channel",
        "Line",
        "Channel Name",
        "Line Name",
        "Inbox",
        "Our Number",
        "Business Number",
        "Line Number",
        "Channel Phone",
    ),
    "external_id": (
        "External ID",
        "Message ID",
        "Message SID",
        "MessageSid",
        "SMS SID",
        "SmsSid",
        "Sid",
        "ID",
        "UUID",
    ),
    "from": ("From", "Sender", "From Number", "Sender Number"),
    "to": ("To", "Recipient", "To Number", "Recipient Number"),
    "media": (
        "Media",
        "Media URL",
        "MediaUrl",
        "Media URLs",
        "Attachment",
        "Attachments",
        "Attachment URL",
        "MMS",
        "Num Media",
        "NumMedia",
    ),
}


def normalise_header(text: str) -> str:
    """The header's matching key: lower case, letters and digits only (accents composed,
    so "Prénom" typed on any system matches)."""
    return "".join(ch for ch in unicodedata.normalize("NFC", text.casefold()) if ch.isalnum())


@dataclass(frozen=True)
class ColumnMapping:
    """Which header index feeds each field, and the headers nothing reads."""

    fields: dict[str, int]
    ignored: tuple[str, ...]


def describe_header(headers: Sequence[str], index: int) -> str:
    """A header's name, with its position when it has no name or another column has the same."""
    name = headers[index]
    if not name:
        return f"(column {index + 1})"
    return f"{name} (column {index + 1})" if headers.count(name) > 1 else name


def match_columns(
    headers: Sequence[str],
    *,
    fields: Mapping[str, Sequence[str]],
    overrides: Mapping[str, str | None] | None = None,
) -> ColumnMapping:
    """The mapping of `headers` onto `fields` (name -> synonyms); raises MappingError."""
    overrides = dict(overrides or {})
    chosen = _apply_overrides(headers, fields=fields, overrides=overrides)
    taken = set(chosen.values())
    overridden = {_find_header(headers, header) for header in overrides}
    ranks: dict[str, tuple[int, int]] = {}
    for index, header in enumerate(headers):
        if index in overridden:
            continue
        key = normalise_header(header)
        for field, synonyms in fields.items():
            if field in chosen:
                continue
            names = [normalise_header(field), *(normalise_header(s) for s in synonyms)]
            if key and key in names:
                rank = (names.index(key), index)
                if field not in ranks or rank < ranks[field]:
                    ranks[field] = rank
    for field, (_, index) in ranks.items():
        if index not in taken:
            chosen[field] = index
            taken.add(index)
    ignored = tuple(describe_header(headers, i) for i in range(len(headers)) if i not in taken)
    return ColumnMapping(fields=chosen, ignored=ignored)


def _apply_overrides(
    headers: Sequence[str],
    *,
    fields: Mapping[str, Sequence[str]],
    overrides: Mapping[str, str | None],
) -> dict[str, int]:
    chosen: dict[str, int] = {}
    for header, field in overrides.items():
        index = _find_header(headers, header)
        if not field:
            continue
        if field not in fields:
            known = ", ".join(fields)
            msg = f"mapping {header!r} -> {field!r}: unknown field {field!r}; known fields: {known}"
            raise MappingError(msg)
        if field in chosen:
            first = headers[chosen[field]]
            msg = f"columns {first!r} and {header!r} are both mapped to {field!r}; map one column per field"
            raise MappingError(msg)
        chosen[field] = index
    return chosen


def _find_header(headers: Sequence[str], header: str) -> int:
    if header in headers:
        if list(headers).count(header) > 1:
            msg = f"the file has several columns named {header!r}; rename them to map one"
            raise MappingError(msg)
        return list(headers).index(header)
    wanted = normalise_header(header)
    matches = [i for i, h in enumerate(headers) if normalise_header(h) == wanted and wanted]
    if len(matches) == 1:
        return matches[0]
    listed = ", ".join(repr(h) for h in headers)
    msg = f"mapped column {header!r} is not in the file; its columns are {listed}"
    raise MappingError(msg)


def parse_map_options(options: Sequence[str]) -> dict[str, str | None]:
    """`--map "CSV header=field"` options as a dict; an empty field ignores the column."""
    parsed: dict[str, str | None] = {}
    for option in options:
        header, sep, field = option.rpartition("=")
        if not sep or not header.strip():
            msg = f'--map {option!r}: expected "CSV header=field"'
            raise MappingError(msg)
        parsed[header.strip()] = field.strip() or None
    return parsed


def load_mapping_file(path: str | Path) -> dict[str, str | None]:
    """A saved mapping (YAML or JSON): `{header: field}`, or the same under a `columns` key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        msg = f"mapping file {path}: cannot read it: {exc}"
        raise MappingError(msg) from None
    if isinstance(data, dict) and isinstance(data.get("columns"), dict):
        data = data["columns"]
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in data.items()
    ):
        msg = f"mapping file {path}: expected a mapping of 'CSV header: field' pairs"
        raise MappingError(msg)
    return {k: v for k, v in data.items()}
