"""Every model, imported once so Alembic and the mappers see the whole schema."""

from portal.accounts.models import Account, KeptForm, LoginSession, ThrottleBucket
from portal.appointments.models import Appointment, SlotCounter
from portal.bundles.models import BundleApplication
from portal.calendar.models import CalendarYear
from portal.cases.models import Case, CaseCounter, TimelineEntry
from portal.catalogue.models import Bundle, CatalogueVersion, Hall, Item
from portal.consultations.models import Consultation
from portal.db import Base
from portal.delivery.models import Delivery, SavedAddress
from portal.exchange.models import InboundEvent, OutboxAttempt, OutboxMessage
from portal.library.models import LibraryDocument
from portal.licences.models import Licence, LicenceReminder
from portal.materials.models import Blob, CaseFile
from portal.notifications.models import Message
from portal.originals.models import Originals
from portal.ratings.models import Rating
from portal.verification.models import SmsCode

__all__ = [
    "Account",
    "Appointment",
    "KeptForm",
    "BundleApplication",
    "Consultation",
    "LibraryDocument",
    "Licence",
    "LicenceReminder",
    "SlotCounter",
    "Base",
    "Blob",
    "Bundle",
    "Case",
    "CalendarYear",
    "CatalogueVersion",
    "Delivery",
    "Message",
    "Originals",
    "SavedAddress",
    "Rating",
    "SmsCode",
    "CaseCounter",
    "CaseFile",
    "Hall",
    "InboundEvent",
    "Item",
    "LoginSession",
    "OutboxAttempt",
    "OutboxMessage",
    "ThrottleBucket",
    "TimelineEntry",
]
