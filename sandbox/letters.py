"""The sandbox's letter catalogue: Danish senders and letter templates the generator draws from.

Texts stay within Latin-1 (no typographic dashes or quotes) because the sandbox PDFs use the PDF core
fonts, which keeps them small and fast to build while their text stays extractable.
CVR numbers pass the modulus-11 check; the bank is fictional.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sender:
    cvr: str
    name: str
    address: str
    public: bool  # an authority (MYNDIGHEDSPOST) rather than a company


@dataclass(frozen=True)
class Template:
    sender: Sender
    title: str
    paragraphs: tuple[str, ...]
    notification: str
    reply_allowed: bool = False
    mandatory: bool = False
    attachment: str | None = None  # title of an additional document, if the letter has one


SKAT = Sender("29634750", "Skattestyrelsen", "Nykøbing Bygade 28, 4800 Nykøbing F", True)
ERST = Sender("10150817", "Erhvervsstyrelsen", "Langelinie Allé 17, 2100 København Ø", True)
UDK = Sender("29894027", "Udbetaling Danmark", "Kongens Vænge 8, 3400 Hillerød", True)
KOMMUNE = Sender("55133018", "Aarhus Kommune", "Rådhuspladsen 2, 8000 Aarhus C", True)
AT = Sender("30624378", "Arbejdstilsynet", "Landskronagade 33, 2100 København Ø", True)
BANK = Sender("32158706", "Nordisk Erhvervsbank A/S", "Havnegade 12, 5000 Odense C", False)

SENDERS: tuple[Sender, ...] = (SKAT, ERST, UDK, KOMMUNE, AT, BANK)

TEMPLATES: tuple[Template, ...] = (
    Template(SKAT, "Momsangivelse for {quarter}. kvartal {year}", (
        ("Vi skal minde jer om, at momsangivelsen for {quarter}. kvartal {year} skal være indberettet "
         "senest den {due}."),
        ("Angivelsen foretages i E-tast på skat.dk. Hvis virksomheden ikke har haft momspligtig "
         "omsætning i perioden, skal der angives nul."),
        ("Hvis angivelsen ikke modtages rettidigt, fastsætter vi et foreløbigt beløb, og der kan blive "
         "pålagt et gebyr på 800 kr."),
    ), "Husk momsangivelsen for {quarter}. kvartal {year}. Frist {due}."),
    Template(SKAT, "Rykker: betaling af selskabsskat", (
        "Vi har endnu ikke modtaget betaling af restskat for indkomståret {year} på {amount} kr.",
        ("Beløbet skal være indbetalt på skattekontoet senest den {due}. Der beregnes rente af "
         "beløbet fra forfaldsdagen."),
        "Hvis beløbet allerede er betalt, kan I se bort fra dette brev.",
    ), "Rykker for selskabsskat {amount} kr. Betal senest {due}.", mandatory=True),
    Template(SKAT, "Afgørelse om ændring af skatteansættelse for {year}", (
        ("Vi har ændret virksomhedens skattepligtige indkomst for indkomståret {year}. Ændringen "
         "betyder, at indkomsten forhøjes med {amount} kr."),
        ("Begrundelsen for afgørelsen fremgår af bilaget. I kan klage over afgørelsen til "
         "Skatteankestyrelsen inden tre måneder fra modtagelsen af dette brev."),
        "Sagsnummer: {case}.",
    ), "Afgørelse om skatteansættelse. Sag {case}.", reply_allowed=True, mandatory=True,
        attachment="Begrundelse for afgørelsen"),
    Template(SKAT, "Forslag til afgørelse om lønsumsafgift", (
        "Vi overvejer at ændre virksomhedens lønsumsafgift for {year} med {amount} kr.",
        ("Før vi træffer afgørelse, har I mulighed for at komme med bemærkninger. Svar venligst "
         "senest den {due} ved at besvare denne meddelelse."),
        "Sagsnummer: {case}.",
    ), "Forslag til afgørelse om lønsumsafgift. Svarfrist {due}.", reply_allowed=True),
    Template(ERST, "Påmindelse om indsendelse af årsrapport {year}", (
        ("Selskabets årsrapport for regnskabsåret {year} skal være modtaget i Erhvervsstyrelsen "
         "senest den {due}."),
        ("Årsrapporten indberettes digitalt. Indsendes den for sent, pålægges selskabet en afgift "
         "efter årsregnskabsloven."),
    ), "Husk at indsende årsrapport for {year} senest {due}."),
    Template(ERST, "Afgørelse om tvangsopløsning kan komme på tale", (
        "Erhvervsstyrelsen har ikke modtaget selskabets årsrapport for {year}.",
        ("Hvis årsrapporten ikke er modtaget senest den {due}, vil selskabet blive sendt til "
         "tvangsopløsning ved skifteretten."),
        "Sagsnummer: {case}.",
    ), "Vigtigt: manglende årsrapport. Frist {due}.", reply_allowed=True, mandatory=True),
    Template(ERST, "Kvittering for registrering af ændring", (
        "Vi har registreret ændringen af selskabets oplysninger i CVR den {date}.",
        "Ændringen er offentliggjort og kan ses på virk.dk. Sagsnummer: {case}.",
    ), "Kvittering for registrering i CVR."),
    Template(UDK, "Refusion af sygedagpenge for medarbejder", (
        "Vi har behandlet jeres anmodning om refusion af sygedagpenge.",
        "Der udbetales {amount} kr. til virksomhedens NemKonto den {due}.",
        "Opgørelsen af refusionen fremgår af bilaget. Sagsnummer: {case}.",
    ), "Refusion af sygedagpenge {amount} kr.", attachment="Opgørelse af refusion"),
    Template(UDK, "Anmodning om lønoplysninger", (
        ("Til brug for behandlingen af en sag om barselsdagpenge beder vi om oplysninger om "
         "medarbejderens løn og ansættelsesforhold."),
        ("Vi skal have svaret senest den {due}. I kan svare ved at besvare denne meddelelse. "
         "Sagsnummer: {case}."),
    ), "Anmodning om lønoplysninger. Svarfrist {due}.", reply_allowed=True),
    Template(KOMMUNE, "Ejendomsskat {year} for erhvervsejendom", (
        "Hermed opkrævning af ejendomsskat for {year} for virksomhedens ejendom.",
        "Første rate på {amount} kr. forfalder den {due}. Beløbet opkræves via betalingsservice.",
    ), "Opkrævning af ejendomsskat {year}.", attachment="Specifikation af ejendomsskat"),
    Template(KOMMUNE, "Afgørelse om tilladelse til skiltning", (
        "Kommunen har behandlet jeres ansøgning om tilladelse til skiltning på facaden.",
        ("Tilladelsen gives på de vilkår, der er beskrevet herunder. Afgørelsen kan påklages "
         "inden fire uger. Sagsnummer: {case}."),
    ), "Afgørelse om skiltning. Sag {case}.", reply_allowed=True),
    Template(KOMMUNE, "Varsel om tilsyn med affaldshåndtering", (
        "Kommunen gennemfører tilsyn med virksomhedens håndtering af erhvervsaffald den {due}.",
        ("Vi beder jer have dokumentation for affaldsaftaler klar. Kontakt os ved at besvare denne "
         "meddelelse, hvis tidspunktet ikke passer."),
    ), "Varsel om tilsyn den {due}.", reply_allowed=True),
    Template(AT, "Påbud om arbejdspladsvurdering", (
        ("Ved tilsynsbesøget den {date} konstaterede Arbejdstilsynet, at virksomheden ikke har en "
         "skriftlig arbejdspladsvurdering."),
        ("Virksomheden skal udarbejde en arbejdspladsvurdering senest den {due} og sende en "
         "tilbagemelding til os. Sagsnummer: {case}."),
    ), "Påbud fra Arbejdstilsynet. Frist {due}.", reply_allowed=True, mandatory=True),
    Template(BANK, "Kontoudtog for erhvervskonto", (
        "Hermed kontoudtog for virksomhedens erhvervskonto for perioden til og med {date}.",
        ("Saldoen var ved periodens udgang {amount} kr. Kontakt jeres erhvervsrådgiver ved "
         "spørgsmål."),
    ), "Nyt kontoudtog i netbanken.", attachment="Kontoudtog"),
    Template(BANK, "Ændring af vilkår for kassekredit", (
        "Vi ændrer renten på virksomhedens kassekredit med virkning fra den {due}.",
        ("De nye vilkår fremgår af bilaget. Ønsker I at drøfte ændringen, er I velkomne til at "
         "kontakte os."),
    ), "Ændrede vilkår for kassekredit fra {due}.", attachment="Vilkår for kassekredit"),
)

PERSONS: tuple[str, ...] = (
    "Mette Kjær Hansen", "Søren Østergaard", "Anne-Marie Nielsen", "Jens Peter Møller",
    "Louise Bæk Jensen", "Rasmus Dahl", "Camilla Ærø Poulsen", "Niels Christian Holm",
)
DEPARTMENTS: tuple[str, ...] = (
    "Bogholderiet", "Lønafdelingen", "Økonomi og regnskab", "HR", "Direktionen", "Ejendomsdrift",
)
COMPANY_WORDS: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] = (
    ("Nordlys", "Vestkyst", "Fjord", "Bøgely", "Havblik", "Skovgaard", "Lærkevang", "Åbo"),
    ("Ventilation", "Byg", "Logistik", "Revision", "Maskinfabrik", "Consult", "Tømrer", "Foods"),
    ("ApS", "A/S", "I/S", "ApS", "A/S"),
)
