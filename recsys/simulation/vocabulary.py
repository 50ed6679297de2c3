"""French vocabulary of the simulated catalogue: publishers, domains, activities and phrases.

Titles, descriptions, tags and organisation names are assembled from these lists, per domain
and per activity, so that the words of an offer carry its domain and activities the way real
offers do and a text model (TF-IDF) has signal to find. Data only, no logic.
"""

from __future__ import annotations

from typing import Final

from recsys import taxonomy

# Share of each domain among bénévolat and Service Civique offers (normalised where used).
DOMAIN_WEIGHTS: Final[dict[str, float]] = {
    "solidarite-insertion": 20.0,
    "education": 13.0,
    "environnement": 10.0,
    "sante": 8.0,
    "culture-loisirs": 7.0,
    "sport": 7.0,
    "vivre-ensemble": 6.0,
    "humanitaire": 4.0,
    "prevention-protection": 4.0,
    "service-public-defense-securite": 3.0,
    "animaux": 3.0,
    "memoire-et-citoyennete": 3.0,
    "numerique": 3.0,
    "benevolat-competences": 2.0,
    "communication": 2.0,
    "emploi": 2.0,
    "gestion-finance-droit": 1.0,
    "recherche": 1.0,
    "batiment-industrie-logistique": 1.0,
    "autre": 1.0,
}

# Domains of the uniformed programmes: firefighters and reserves are not spread like the rest.
PROGRAMME_DOMAINS: Final[dict[str, dict[str, float]]] = {
    taxonomy.SAPEURS_POMPIERS: {
        "prevention-protection": 0.6,
        "service-public-defense-securite": 0.4,
    },
    taxonomy.RESERVE: {
        "service-public-defense-securite": 0.8,
        "prevention-protection": 0.1,
        "memoire-et-citoyennete": 0.1,
    },
}

# Typical activities of each domain; an offer draws most of its activities from here.
DOMAIN_ACTIVITIES: Final[dict[str, tuple[str, ...]]] = {
    "animaux": ("protection-animale", "soins-animaux", "sensibilisation", "collecte"),
    "autre": ("accueil-de-public", "aide-administrative", "logistique", "evenementiel"),
    "batiment-industrie-logistique": (
        "reemploi-reparation",
        "logistique",
        "conduite",
        "distribution",
    ),
    "benevolat-competences": (
        "conseil-juridique",
        "tresorerie",
        "gestion-de-projet",
        "informatique",
        "graphisme",
        "traduction",
        "formation",
    ),
    "communication": (
        "communication",
        "reseaux-sociaux",
        "graphisme",
        "montage-video",
        "photographie",
    ),
    "culture-loisirs": (
        "animation",
        "atelier-creatif",
        "musique",
        "evenementiel",
        "photographie",
        "accueil-de-public",
    ),
    "education": (
        "soutien-scolaire",
        "aide-aux-devoirs",
        "mentorat-parrainage",
        "animation",
        "encadrement-jeunes",
        "formation",
    ),
    "emploi": ("mentorat-parrainage", "formation", "aide-administrative", "mediation"),
    "environnement": (
        "ramassage-dechets",
        "nettoyage-nature",
        "jardinage",
        "entretien-espaces-verts",
        "sensibilisation",
        "reemploi-reparation",
    ),
    "gestion-finance-droit": ("conseil-juridique", "tresorerie", "aide-administrative"),
    "humanitaire": (
        "aide-alimentaire",
        "distribution",
        "collecte",
        "maraude",
        "logistique",
        "traduction",
    ),
    "memoire-et-citoyennete": (
        "recherche-documentaire",
        "evenementiel",
        "sensibilisation",
        "animation",
        "accueil-de-public",
    ),
    "numerique": ("inclusion-numerique", "informatique", "formation", "reseaux-sociaux"),
    "prevention-protection": (
        "prevention-sante",
        "secourisme",
        "securite-civile",
        "sensibilisation",
        "surveillance",
        "sauvetage",
    ),
    "recherche": ("recherche-documentaire", "gestion-de-projet", "formation"),
    "sante": (
        "prevention-sante",
        "accompagnement-handicap",
        "ecoute",
        "visite-convivialite",
        "secourisme",
    ),
    "service-public-defense-securite": (
        "defense",
        "surveillance",
        "securite-civile",
        "accueil-de-public",
        "aide-administrative",
        "conduite",
        "logistique",
    ),
    "sport": ("animation-sportive", "arbitrage", "encadrement-jeunes", "evenementiel"),
    "solidarite-insertion": (
        "aide-alimentaire",
        "maraude",
        "lutte-contre-isolement",
        "accompagnement-personnes-agees",
        "ecoute",
        "mediation",
        "distribution",
        "cuisine",
        "visite-convivialite",
    ),
    "vivre-ensemble": (
        "mediation",
        "lutte-contre-isolement",
        "animation",
        "visite-convivialite",
        "accueil-de-public",
        "cuisine",
    ),
}

# Activities of the uniformed programmes, whatever their domain.
PROGRAMME_ACTIVITIES: Final[dict[str, tuple[str, ...]]] = {
    taxonomy.SAPEURS_POMPIERS: ("secourisme", "securite-civile", "sauvetage", "prevention-sante"),
    taxonomy.RESERVE: ("defense", "surveillance", "securite-civile", "logistique", "conduite"),
}

# Per activity: (title phrase, description sentence).
ACTIVITY_PHRASES: Final[dict[str, tuple[str, str]]] = {
    "accueil-de-public": (
        "Accueillir et orienter le public",
        "Vous accueillerez les visiteurs, les orienterez et répondrez à leurs questions.",
    ),
    "accompagnement-personnes-agees": (
        "Accompagner des personnes âgées",
        "Vous accompagnerez des personnes âgées dans leurs sorties et leurs démarches du "
        "quotidien.",
    ),
    "accompagnement-handicap": (
        "Accompagner des personnes en situation de handicap",
        "Vous accompagnerez des personnes en situation de handicap dans leurs loisirs et leur "
        "autonomie.",
    ),
    "aide-alimentaire": (
        "Participer à l'aide alimentaire",
        "Vous préparerez et distribuerez des colis alimentaires aux familles bénéficiaires.",
    ),
    "aide-aux-devoirs": (
        "Aider des enfants à faire leurs devoirs",
        "Vous aiderez des écoliers à faire leurs devoirs et à reprendre confiance en eux.",
    ),
    "aide-administrative": (
        "Aider aux démarches administratives",
        "Vous aiderez les usagers à remplir leurs dossiers et à comprendre leurs courriers "
        "administratifs.",
    ),
    "animation": (
        "Animer des activités collectives",
        "Vous animerez des ateliers et des jeux collectifs pour petits et grands.",
    ),
    "animation-sportive": (
        "Animer des séances de sport",
        "Vous animerez des séances sportives et ferez découvrir de nouvelles disciplines.",
    ),
    "arbitrage": (
        "Arbitrer des rencontres sportives",
        "Vous arbitrerez des matchs et veillerez au respect des règles et du fair-play.",
    ),
    "atelier-creatif": (
        "Animer des ateliers créatifs",
        "Vous proposerez des ateliers de peinture, de dessin et de bricolage créatif.",
    ),
    "collecte": (
        "Participer à une collecte solidaire",
        "Vous tiendrez un stand de collecte de dons à l'entrée des magasins.",
    ),
    "communication": (
        "Renforcer la communication de l'association",
        "Vous rédigerez des articles, des affiches et la lettre d'information de l'association.",
    ),
    "conduite": (
        "Assurer des transports et des livraisons",
        "Vous conduirez le véhicule de l'association pour les tournées et les livraisons.",
    ),
    "conseil-juridique": (
        "Informer sur l'accès au droit",
        "Vous informerez les personnes sur leurs droits et les orienterez vers les bons "
        "interlocuteurs juridiques.",
    ),
    "cuisine": (
        "Cuisiner des repas solidaires",
        "Vous cuisinerez des repas partagés et servirez les convives dans la bonne humeur.",
    ),
    "distribution": (
        "Distribuer des produits de première nécessité",
        "Vous distribuerez vêtements, produits d'hygiène et denrées aux personnes accueillies.",
    ),
    "ecoute": (
        "Écouter et soutenir",
        "Vous offrirez une écoute bienveillante aux personnes en difficulté.",
    ),
    "encadrement-jeunes": (
        "Encadrer des jeunes",
        "Vous encadrerez des groupes de jeunes lors des sorties et des séjours.",
    ),
    "entretien-espaces-verts": (
        "Entretenir des espaces verts",
        "Vous entretiendrez les parcs, les haies et les sentiers avec l'équipe technique.",
    ),
    "evenementiel": (
        "Organiser un événement",
        "Vous participerez à l'organisation et au bon déroulement d'un festival ou d'une fête "
        "locale.",
    ),
    "formation": (
        "Former et transmettre",
        "Vous préparerez et animerez des sessions de formation pour les bénévoles et le public.",
    ),
    "gestion-de-projet": (
        "Piloter un projet associatif",
        "Vous coordonnerez un projet associatif, son calendrier et ses partenaires.",
    ),
    "graphisme": (
        "Créer des visuels",
        "Vous concevrez des visuels, des flyers et la charte graphique des campagnes.",
    ),
    "informatique": (
        "Accompagner l'informatique de l'association",
        "Vous maintiendrez le parc informatique et le site internet de la structure.",
    ),
    "inclusion-numerique": (
        "Accompagner vers le numérique",
        "Vous aiderez des personnes éloignées du numérique à utiliser un ordinateur, un "
        "smartphone et les services en ligne.",
    ),
    "jardinage": (
        "Jardiner au potager partagé",
        "Vous cultiverez le potager partagé et transmettrez les gestes du jardinage au naturel.",
    ),
    "logistique": (
        "Renforcer la logistique",
        "Vous gérerez les stocks, le tri et le rangement de l'entrepôt.",
    ),
    "lutte-contre-isolement": (
        "Rompre l'isolement",
        "Vous rendrez visite et téléphonerez à des personnes isolées pour rompre leur solitude.",
    ),
    "maraude": (
        "Participer à des maraudes",
        "Vous irez à la rencontre des personnes sans abri lors des maraudes du soir.",
    ),
    "mediation": (
        "Faire de la médiation de proximité",
        "Vous ferez de la médiation entre habitants et favoriserez le dialogue dans le quartier.",
    ),
    "mentorat-parrainage": (
        "Devenir mentor",
        "Vous parrainerez un jeune dans son orientation et son projet professionnel.",
    ),
    "montage-video": (
        "Réaliser des vidéos",
        "Vous tournerez et monterez de courtes vidéos pour présenter les actions.",
    ),
    "musique": (
        "Partager la musique",
        "Vous animerez des ateliers de musique et de chant et préparerez un concert.",
    ),
    "nettoyage-nature": (
        "Nettoyer des espaces naturels",
        "Vous participerez au nettoyage des berges, des plages et des forêts.",
    ),
    "photographie": (
        "Photographier les actions",
        "Vous réaliserez des reportages photo lors des événements de la structure.",
    ),
    "prevention-sante": (
        "Sensibiliser à la santé",
        "Vous animerez des actions de prévention santé auprès du public.",
    ),
    "protection-animale": (
        "Protéger les animaux",
        "Vous participerez à la protection et au sauvetage des animaux abandonnés.",
    ),
    "ramassage-dechets": (
        "Ramasser les déchets",
        "Vous organiserez des opérations de ramassage et de tri des déchets.",
    ),
    "reemploi-reparation": (
        "Réparer et donner une seconde vie",
        "Vous réparerez vélos, meubles et appareils pour leur donner une seconde vie.",
    ),
    "recherche-documentaire": (
        "Mener des recherches documentaires",
        "Vous consulterez les archives et rassemblerez témoignages et documents.",
    ),
    "reseaux-sociaux": (
        "Animer les réseaux sociaux",
        "Vous animerez les réseaux sociaux et ferez connaître les actions auprès des jeunes.",
    ),
    "sauvetage": (
        "Porter secours et sauver",
        "Vous interviendrez en équipe lors des opérations de sauvetage et de secours.",
    ),
    "secourisme": (
        "Porter les premiers secours",
        "Vous apprendrez les gestes de premiers secours et porterez assistance aux victimes.",
    ),
    "securite-civile": (
        "Renforcer la sécurité civile",
        "Vous renforcerez les équipes de sécurité civile lors des crises et des intempéries.",
    ),
    "sensibilisation": (
        "Sensibiliser le public",
        "Vous tiendrez des stands et animerez des actions de sensibilisation.",
    ),
    "soins-animaux": (
        "Prendre soin des animaux",
        "Vous nourrirez, soignerez et promènerez les animaux du refuge.",
    ),
    "soutien-scolaire": (
        "Donner du soutien scolaire",
        "Vous donnerez des cours de soutien en français et en mathématiques à des collégiens.",
    ),
    "surveillance": (
        "Assurer la surveillance et la protection",
        "Vous assurerez des missions de surveillance et de protection des sites sensibles.",
    ),
    "traduction": (
        "Traduire et interpréter",
        "Vous traduirez des documents et accompagnerez des personnes non francophones.",
    ),
    "tresorerie": (
        "Tenir la trésorerie",
        "Vous tiendrez la comptabilité et préparerez le budget de l'association.",
    ),
    "visite-convivialite": (
        "Rendre des visites de convivialité",
        "Vous partagerez des moments de convivialité avec les résidents d'un établissement.",
    ),
    "defense": (
        "Servir dans la réserve",
        "Vous renforcerez les forces armées lors de missions de protection du territoire.",
    ),
}

# Per domain: context sentences and keywords (tags and extra words of the description).
DOMAIN_SENTENCES: Final[dict[str, tuple[str, ...]]] = {
    "animaux": (
        "La structure recueille chaque année des centaines de chiens et de chats abandonnés.",
        "Le refuge agit pour le bien-être animal et l'adoption responsable.",
    ),
    "autre": (
        "La structure mène des actions variées au service des habitants.",
        "L'association a besoin de renfort pour faire vivre ses projets.",
    ),
    "batiment-industrie-logistique": (
        "L'atelier rénove des logements et des locaux associatifs.",
        "La plateforme logistique approvisionne les antennes solidaires du territoire.",
    ),
    "benevolat-competences": (
        "Mettez vos compétences professionnelles au service d'une association.",
        "L'association cherche des bénévoles qualifiés pour structurer son fonctionnement.",
    ),
    "communication": (
        "L'association veut faire connaître ses actions à un plus large public.",
        "La communication est essentielle pour mobiliser donateurs et bénévoles.",
    ),
    "culture-loisirs": (
        "La structure rend la culture accessible à tous les publics.",
        "Le centre culturel propose spectacles, expositions et ateliers toute l'année.",
    ),
    "education": (
        "L'association lutte contre le décrochage scolaire.",
        "La structure accompagne les élèves dans leur réussite éducative.",
    ),
    "emploi": (
        "L'association accompagne les demandeurs d'emploi vers un retour à l'emploi.",
        "La structure aide les jeunes à construire leur projet professionnel.",
    ),
    "environnement": (
        "L'association agit pour la protection de la biodiversité et la transition écologique.",
        "La structure sensibilise les habitants au climat, au tri et à la réduction des déchets.",
    ),
    "gestion-finance-droit": (
        "Le point d'accès au droit informe gratuitement les habitants.",
        "L'association aide les familles à gérer leur budget et à éviter le surendettement.",
    ),
    "humanitaire": (
        "L'association vient en aide aux personnes touchées par la précarité et les crises.",
        "La structure mène des actions de solidarité internationale et d'urgence.",
    ),
    "memoire-et-citoyennete": (
        "L'association transmet la mémoire des conflits et les valeurs de la République.",
        "La structure encourage l'engagement citoyen et la participation démocratique.",
    ),
    "numerique": (
        "L'association réduit la fracture numérique sur le territoire.",
        "La structure forme les habitants aux outils numériques et aux démarches en ligne.",
    ),
    "prevention-protection": (
        "La structure protège la population et prévient les risques.",
        "Les équipes interviennent pour la prévention des accidents et le secours aux personnes.",
    ),
    "recherche": (
        "Le laboratoire associe des citoyens à un programme de sciences participatives.",
        "La structure mène des études et des inventaires avec des bénévoles.",
    ),
    "sante": (
        "L'association accompagne les malades et leurs proches.",
        "La structure promeut la santé et le bien-être de tous.",
    ),
    "service-public-defense-securite": (
        "Contribuez à la sécurité et à la défense du pays.",
        "Le service public a besoin de volontaires pour protéger la population.",
    ),
    "sport": (
        "Le club fait du sport un outil d'inclusion et de santé.",
        "L'association sportive accueille des licenciés de tous les âges.",
    ),
    "solidarite-insertion": (
        "L'association lutte contre la pauvreté et l'exclusion.",
        "La structure accompagne les personnes en précarité vers l'insertion.",
    ),
    "vivre-ensemble": (
        "Le centre social favorise les liens entre les habitants du quartier.",
        "L'association crée des moments de rencontre entre générations et cultures.",
    ),
}

DOMAIN_KEYWORDS: Final[dict[str, tuple[str, ...]]] = {
    "animaux": ("animaux", "refuge", "adoption", "bien-être animal"),
    "autre": ("engagement", "polyvalence", "proximité"),
    "batiment-industrie-logistique": ("chantier", "rénovation", "logistique", "entrepôt"),
    "benevolat-competences": ("compétences", "expertise", "mécénat de compétences"),
    "communication": ("communication", "visibilité", "médias"),
    "culture-loisirs": ("culture", "loisirs", "spectacle", "patrimoine"),
    "education": ("éducation", "école", "réussite scolaire", "jeunesse"),
    "emploi": ("emploi", "insertion professionnelle", "orientation"),
    "environnement": ("environnement", "biodiversité", "climat", "déchets", "nature"),
    "gestion-finance-droit": ("droit", "budget", "gestion"),
    "humanitaire": ("humanitaire", "urgence", "précarité", "solidarité internationale"),
    "memoire-et-citoyennete": ("mémoire", "citoyenneté", "histoire", "République"),
    "numerique": ("numérique", "informatique", "fracture numérique"),
    "prevention-protection": ("prévention", "secours", "protection", "risques"),
    "recherche": ("recherche", "sciences participatives", "études"),
    "sante": ("santé", "bien-être", "soin", "handicap"),
    "service-public-defense-securite": ("défense", "sécurité", "service public"),
    "sport": ("sport", "club", "compétition", "activité physique"),
    "solidarite-insertion": ("solidarité", "insertion", "exclusion", "précarité"),
    "vivre-ensemble": ("vivre-ensemble", "quartier", "lien social", "intergénérationnel"),
}

DOMAIN_AUDIENCES: Final[dict[str, tuple[str, ...]]] = {
    "education": ("des écoliers", "des collégiens", "des lycéens"),
    "sante": ("des patients", "des personnes en situation de handicap"),
    "solidarite-insertion": ("des familles", "des personnes sans abri", "des personnes âgées"),
    "vivre-ensemble": ("des habitants du quartier", "des personnes âgées isolées"),
    "sport": ("des jeunes licenciés", "des enfants"),
    "culture-loisirs": ("des enfants", "des familles"),
    "emploi": ("des jeunes en recherche d'emploi", "des demandeurs d'emploi"),
    "numerique": ("des seniors", "des personnes éloignées du numérique"),
    "humanitaire": ("des personnes réfugiées", "des familles démunies"),
}

# Host organisations: (name pattern, ...) per domain; {city} is the offer's city.
ORGANISATION_PATTERNS: Final[dict[str, tuple[str, ...]]] = {
    "animaux": ("Refuge animalier de {city}", "Les Amis des bêtes de {city}"),
    "autre": ("Maison des associations de {city}", "Association Ensemble à {city}"),
    "batiment-industrie-logistique": (
        "Chantier d'insertion de {city}",
        "Atelier solidaire de {city}",
    ),
    "benevolat-competences": (
        "Réseau des experts solidaires de {city}",
        "Passerelle compétences {city}",
    ),
    "communication": ("Radio associative de {city}", "Collectif Médias citoyens de {city}"),
    "culture-loisirs": ("Centre culturel de {city}", "Festival des arts de {city}"),
    "education": ("Association Réussite éducative de {city}", "Club Lire et grandir de {city}"),
    "emploi": ("Mission locale de {city}", "Club Emploi solidaire de {city}"),
    "environnement": ("Collectif Nature en ville de {city}", "Association Zéro déchet {city}"),
    "gestion-finance-droit": ("Point d'accès au droit de {city}", "Budget solidaire {city}"),
    "humanitaire": ("Secours solidaire de {city}", "Comité humanitaire de {city}"),
    "memoire-et-citoyennete": (
        "Comité du souvenir de {city}",
        "Maison de la citoyenneté de {city}",
    ),
    "numerique": ("Espace numérique de {city}", "Association Connexions solidaires {city}"),
    "prevention-protection": ("Protection civile de {city}", "Association Secourisme {city}"),
    "recherche": ("Observatoire participatif de {city}", "Laboratoire citoyen de {city}"),
    "sante": ("Association Santé partagée de {city}", "Centre hospitalier de {city}"),
    "service-public-defense-securite": ("Mairie de {city}", "Préfecture de {department}"),
    "sport": ("Union sportive de {city}", "Club omnisports de {city}"),
    "solidarite-insertion": (
        "Épicerie solidaire de {city}",
        "Centre communal d'action sociale de {city}",
    ),
    "vivre-ensemble": ("Centre social de {city}", "Maison de quartier de {city}"),
}
PROGRAMME_ORGANISATIONS: Final[dict[str, tuple[str, ...]]] = {
    taxonomy.SAPEURS_POMPIERS: ("SDIS {department}", "Centre d'incendie et de secours de {city}"),
    taxonomy.RESERVE: (
        "Gendarmerie nationale, groupement {department}",
        "Armée de Terre, régiment de {city}",
        "Police nationale, {department}",
    ),
}

PROGRAMME_SENTENCES: Final[dict[str, str]] = {
    taxonomy.BENEVOLAT: "Mission bénévole ouverte à toutes et à tous, sans condition de diplôme.",
    taxonomy.SERVICE_CIVIQUE: (
        "Mission de Service Civique indemnisée, ouverte aux 16-25 ans et jusqu'à 30 ans pour "
        "les jeunes en situation de handicap."
    ),
    taxonomy.SAPEURS_POMPIERS: (
        "Devenez sapeur-pompier volontaire : formation assurée, gardes et interventions près de "
        "chez vous, indemnités horaires."
    ),
    taxonomy.RESERVE: (
        "Rejoignez la réserve opérationnelle : quelques jours par an, rémunérés, au service de "
        "la sécurité du pays."
    ),
}
SNU_SENTENCE: Final = (
    "Cette mission peut accueillir des volontaires du Service national universel (mission "
    "d'intérêt général)."
)
MINORS_SENTENCE: Final = "Mission ouverte aux mineurs à partir de 16 ans."

PROGRAMME_TAGS: Final[dict[str, str]] = {
    taxonomy.BENEVOLAT: "bénévolat",
    taxonomy.SERVICE_CIVIQUE: "service civique",
    taxonomy.SAPEURS_POMPIERS: "sapeurs-pompiers",
    taxonomy.RESERVE: "réserve",
}

# Schedules per programme, each with its draw weight; bénévolat schedules decide its lifecycle.
BENEVOLAT_SCHEDULES: Final[tuple[tuple[str, str, float], ...]] = (
    # (schedule text, lifecycle kind, weight)
    ("une journée", "one_day", 0.14),
    ("une demi-journée, ponctuel", "one_day", 0.08),
    ("2 heures par semaine", "regular", 0.22),
    ("3 heures par semaine", "regular", 0.12),
    ("une demi-journée par semaine", "regular", 0.12),
    ("quelques heures par mois", "regular", 0.10),
    ("2 jours par semaine", "regular", 0.06),
    ("quelques jours par an", "yearly", 0.10),
    ("un week-end par mois", "yearly", 0.06),
)
SERVICE_CIVIQUE_SCHEDULE: Final = "{hours} heures par semaine pendant {months} mois"
FIREFIGHTER_SCHEDULES: Final[tuple[str, ...]] = (
    "quelques heures par semaine, gardes et astreintes",
    "4 heures par semaine et des astreintes le week-end",
)
RESERVE_SCHEDULES: Final[tuple[str, ...]] = ("quelques jours par an", "30 jours par an")

# Publishers: the four programme operators, then associations and platforms. The first
# entries publish most offers (a heavy tail). (name, primary domain or "" for generalists)
PUBLISHERS: Final[tuple[tuple[str, str], ...]] = (
    ("JeVeuxAider.gouv.fr", ""),
    ("Service Civique", ""),
    ("Sapeurs-pompiers de France", "prevention-protection"),
    ("Réserve opérationnelle", "service-public-defense-securite"),
    ("Garde nationale", "service-public-defense-securite"),
    ("Réseau Entraide et Partage", "solidarite-insertion"),
    ("Fédération Sport pour Tous", "sport"),
    ("Collectif Nature et Climat", "environnement"),
    ("Ligue de l'éducation populaire", "education"),
    ("Union des centres sociaux", "vivre-ensemble"),
    ("Banques solidaires de France", "solidarite-insertion"),
    ("Réseau Santé Solidaire", "sante"),
    ("Culture pour Tous", "culture-loisirs"),
    ("Numérique Inclusif", "numerique"),
    ("Mémoire et Citoyenneté", "memoire-et-citoyennete"),
    ("Réserve civique", ""),
    ("Mentorat Jeunes Avenir", "education"),
    ("Secours et Urgence", "humanitaire"),
    ("Protection animale de France", "animaux"),
    ("Experts solidaires", "benevolat-competences"),
    ("Plateforme Bénévolat Local", ""),
    ("Tremplin Emploi Jeunes", "emploi"),
    ("Ateliers du réemploi", "batiment-industrie-logistique"),
    ("Sciences participatives", "recherche"),
    ("Médias citoyens", "communication"),
    ("Accès au droit solidaire", "gestion-finance-droit"),
    ("Jeunesse et Quartiers", "vivre-ensemble"),
    ("Océans Propres", "environnement"),
    ("Seniors Connectés", "solidarite-insertion"),
    ("Clubs Sportifs Solidaires", "sport"),
)
PUBLISHER_INDEX: Final[dict[str, int]] = {name: i for i, (name, _) in enumerate(PUBLISHERS)}
PLATFORM_NAME: Final = "API Engagement"  # the platform's own site: api, seo, email, campaign

# Widget hosts (partner sites diffusing offers), patterns on the widget's city.
WIDGET_HOSTS: Final[tuple[str, ...]] = (
    "Mairie de {city}",
    "Mission locale de {city}",
    "Université de {city}",
    "Point Information Jeunesse de {city}",
    "Département : {department}",
    "Lycée de {city}",
)
