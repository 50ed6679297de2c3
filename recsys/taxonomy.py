"""Vocabularies of the national engagement API and of the platform's quiz.

One module holds every closed list (programmes, domains, activities, quiz answers) and the
maps between the offer taxonomy and the quiz taxonomy, because the loaders, the simulator,
the eligibility rules, the incumbent engine and the service must all agree on them.
"""

from __future__ import annotations

from typing import Final

# --- Programmes ("dispositifs"): the `type` field of an offer -------------------------------
BENEVOLAT: Final = "benevolat"
SERVICE_CIVIQUE: Final = "volontariat_service_civique"
SAPEURS_POMPIERS: Final = "volontariat_sapeurs_pompiers"
RESERVE: Final = "volontariat_reserve_operationnelle"
PROGRAMMES: Final[tuple[str, ...]] = (BENEVOLAT, SERVICE_CIVIQUE, SAPEURS_POMPIERS, RESERVE)

PROGRAMME_LABELS_FR: Final[dict[str, str]] = {
    BENEVOLAT: "Bénévolat",
    SERVICE_CIVIQUE: "Service Civique",
    SAPEURS_POMPIERS: "Sapeurs-pompiers volontaires",
    RESERVE: "Réserve opérationnelle",
}

# Hard age bounds per programme (DOMAIN.md section 4), inclusive.
PROGRAMME_AGE_BOUNDS: Final[dict[str, tuple[int, int]]] = {
    BENEVOLAT: (16, 120),  # minors (16-17) only where openToMinors is yes
    SERVICE_CIVIQUE: (16, 25),
    SAPEURS_POMPIERS: (16, 67),
    RESERVE: (17, 72),
}
SERVICE_CIVIQUE_DISABILITY_MAX_AGE: Final = 30
SNU_AGE_BOUNDS: Final = (15, 17)
ADULT_AGE: Final = 18

# --- Domains (20) ------------------------------------------------------------------------------
DOMAINS: Final[tuple[str, ...]] = (
    "animaux",
    "autre",
    "batiment-industrie-logistique",
    "benevolat-competences",
    "communication",
    "culture-loisirs",
    "education",
    "emploi",
    "environnement",
    "gestion-finance-droit",
    "humanitaire",
    "memoire-et-citoyennete",
    "numerique",
    "prevention-protection",
    "recherche",
    "sante",
    "service-public-defense-securite",
    "sport",
    "solidarite-insertion",
    "vivre-ensemble",
)

DOMAIN_LABELS_FR: Final[dict[str, str]] = {
    "animaux": "Animaux",
    "autre": "Autre",
    "batiment-industrie-logistique": "Bâtiment, industrie, logistique",
    "benevolat-competences": "Bénévolat de compétences",
    "communication": "Communication",
    "culture-loisirs": "Culture et loisirs",
    "education": "Éducation",
    "emploi": "Emploi",
    "environnement": "Environnement",
    "gestion-finance-droit": "Gestion, finance, droit",
    "humanitaire": "Humanitaire",
    "memoire-et-citoyennete": "Mémoire et citoyenneté",
    "numerique": "Numérique",
    "prevention-protection": "Prévention et protection",
    "recherche": "Recherche",
    "sante": "Santé",
    "service-public-defense-securite": "Service public, défense, sécurité",
    "sport": "Sport",
    "solidarite-insertion": "Solidarité et insertion",
    "vivre-ensemble": "Vivre ensemble",
}

# --- Quiz taxonomy (DOMAIN.md section 5) -------------------------------------------------------
DONT_KNOW: Final = "je-ne-sais-pas"

QUIZ_DOMAINS: Final[tuple[str, ...]] = (
    "sante-bien-etre",
    "sport",
    "solidarite-inclusion",
    "environnement-animaux",
    "art-culture",
    "securite-secours",
    "citoyennete",
    "numerique",
    "education",
)

QUIZ_DOMAIN_LABELS_FR: Final[dict[str, str]] = {
    "sante-bien-etre": "santé et bien-être",
    "sport": "sport",
    "solidarite-inclusion": "solidarité et inclusion",
    "environnement-animaux": "environnement et animaux",
    "art-culture": "art et culture",
    "securite-secours": "sécurité et secours",
    "citoyennete": "citoyenneté",
    "numerique": "numérique",
    "education": "éducation",
}

# Offer domain -> quiz engagement domains it answers to.
DOMAIN_TO_QUIZ: Final[dict[str, tuple[str, ...]]] = {
    "animaux": ("environnement-animaux",),
    "autre": (),
    "batiment-industrie-logistique": ("solidarite-inclusion",),
    "benevolat-competences": ("solidarite-inclusion", "numerique"),
    "communication": ("numerique", "art-culture"),
    "culture-loisirs": ("art-culture",),
    "education": ("education",),
    "emploi": ("solidarite-inclusion", "education"),
    "environnement": ("environnement-animaux",),
    "gestion-finance-droit": ("citoyennete",),
    "humanitaire": ("solidarite-inclusion", "sante-bien-etre"),
    "memoire-et-citoyennete": ("citoyennete",),
    "numerique": ("numerique",),
    "prevention-protection": ("securite-secours", "sante-bien-etre"),
    "recherche": ("education",),
    "sante": ("sante-bien-etre",),
    "service-public-defense-securite": ("securite-secours", "citoyennete"),
    "sport": ("sport",),
    "solidarite-insertion": ("solidarite-inclusion",),
    "vivre-ensemble": ("solidarite-inclusion", "citoyennete"),
}

QUIZ_ACTIVITIES: Final[tuple[str, ...]] = (
    "aider-accompagner",
    "transmettre-animer",
    "agir-terrain",
    "secourir-proteger",
    "organiser-coordonner",
    "creer-communiquer",
)

QUIZ_ACTIVITY_LABELS_FR: Final[dict[str, str]] = {
    "aider-accompagner": "aider et accompagner",
    "transmettre-animer": "transmettre et animer",
    "agir-terrain": "agir sur le terrain",
    "secourir-proteger": "secourir et protéger",
    "organiser-coordonner": "organiser et coordonner",
    "creer-communiquer": "créer et communiquer",
}

# Activity slug -> the quiz activity type it belongs to. About fifty slugs, as in the API.
ACTIVITY_TO_QUIZ: Final[dict[str, str]] = {
    "accueil-de-public": "aider-accompagner",
    "accompagnement-personnes-agees": "aider-accompagner",
    "accompagnement-handicap": "aider-accompagner",
    "aide-alimentaire": "aider-accompagner",
    "aide-aux-devoirs": "transmettre-animer",
    "aide-administrative": "organiser-coordonner",
    "animation": "transmettre-animer",
    "animation-sportive": "transmettre-animer",
    "arbitrage": "organiser-coordonner",
    "atelier-creatif": "creer-communiquer",
    "collecte": "agir-terrain",
    "communication": "creer-communiquer",
    "conduite": "agir-terrain",
    "conseil-juridique": "aider-accompagner",
    "cuisine": "agir-terrain",
    "distribution": "agir-terrain",
    "ecoute": "aider-accompagner",
    "encadrement-jeunes": "transmettre-animer",
    "entretien-espaces-verts": "agir-terrain",
    "evenementiel": "organiser-coordonner",
    "formation": "transmettre-animer",
    "gestion-de-projet": "organiser-coordonner",
    "graphisme": "creer-communiquer",
    "informatique": "creer-communiquer",
    "inclusion-numerique": "transmettre-animer",
    "jardinage": "agir-terrain",
    "logistique": "organiser-coordonner",
    "lutte-contre-isolement": "aider-accompagner",
    "maraude": "aider-accompagner",
    "mediation": "aider-accompagner",
    "mentorat-parrainage": "transmettre-animer",
    "montage-video": "creer-communiquer",
    "musique": "creer-communiquer",
    "nettoyage-nature": "agir-terrain",
    "photographie": "creer-communiquer",
    "prevention-sante": "secourir-proteger",
    "protection-animale": "agir-terrain",
    "ramassage-dechets": "agir-terrain",
    "reemploi-reparation": "agir-terrain",
    "recherche-documentaire": "organiser-coordonner",
    "reseaux-sociaux": "creer-communiquer",
    "sauvetage": "secourir-proteger",
    "secourisme": "secourir-proteger",
    "securite-civile": "secourir-proteger",
    "sensibilisation": "transmettre-animer",
    "soins-animaux": "agir-terrain",
    "soutien-scolaire": "transmettre-animer",
    "surveillance": "secourir-proteger",
    "traduction": "aider-accompagner",
    "tresorerie": "organiser-coordonner",
    "visite-convivialite": "aider-accompagner",
    "defense": "secourir-proteger",
}
ACTIVITIES: Final[tuple[str, ...]] = tuple(ACTIVITY_TO_QUIZ)

RHYTHMS: Final[tuple[str, ...]] = (
    "un-jour",
    "quelques-heures-par-semaine",
    "plusieurs-jours-par-semaine",
    "quelques-jours-dans-l-annee",
    "temps-plein-plusieurs-mois",
)

RHYTHM_LABELS_FR: Final[dict[str, str]] = {
    "un-jour": "une journée",
    "quelques-heures-par-semaine": "quelques heures par semaine",
    "plusieurs-jours-par-semaine": "plusieurs jours par semaine",
    "quelques-jours-dans-l-annee": "quelques jours dans l’année",
    "temps-plein-plusieurs-mois": "à temps plein pendant plusieurs mois",
}

MOTIVATIONS: Final[tuple[str, ...]] = (
    "indemnisation",
    "a-distance",
    "experience-pro",
    "rencontrer-des-gens",
    "etre-utile",
    "decouvrir-un-metier",
)

# Latent aspiration of a young person (simulator only; the quiz does not ask it directly).
ASPIRATIONS: Final[tuple[str, ...]] = (
    "orientation",
    "insertion",
    "remobilisation",
    "accomplissement",
    "utilite",
)

# --- Offer attributes ----------------------------------------------------------------------------
REMOTE_VALUES: Final[tuple[str, ...]] = ("no", "possible", "full", "local")
REMOTE_IGNORES_DISTANCE: Final[frozenset[str]] = frozenset({"possible", "full", "local"})
STATUS_ACCEPTED: Final = "ACCEPTED"
STATUS_CODES: Final[tuple[str, ...]] = ("ACCEPTED", "REFUSED")
COMPENSATION_UNITS: Final[tuple[str, ...]] = ("hour", "day", "month", "year")
COMPENSATION_TYPES: Final[tuple[str, ...]] = ("gross", "net")

# --- Events ---------------------------------------------------------------------------
EVENT_TYPES: Final[tuple[str, ...]] = ("print", "click", "apply", "account")
EVENT_SOURCES: Final[tuple[str, ...]] = (
    "api",
    "widget",
    "campaign",
    "seo",
    "jstag",
    "publisher",
    "email",
)
# The platform's own recommendation surfaces: its search, partner widgets, the newsletter.
# The lists of these sources are the ones a policy serves (the replay, counterfactual
# estimates); campaigns, search-engine landings and publishers' own sites are not ours.
SERVED_SOURCES: Final[tuple[str, ...]] = ("api", "widget", "email")
APPLY_STATUSES: Final[tuple[str, ...]] = (
    "PENDING",
    "VALIDATED",
    "CANCEL",
    "CANCELED",
    "REFUSED",
    "CARRIED_OUT",
)

# --- Mobility (incumbent engine's geographic radius, km) ---------------------------------------
MOBILITY_RADIUS_KM: Final[dict[str, float]] = {
    "walking": 5.0,
    "public_transport": 5.0,
    "bike": 10.0,
    "car": 30.0,
}
DEFAULT_RADIUS_KM: Final = 20.0
