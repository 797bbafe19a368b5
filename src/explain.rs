//! The long explanation of every diagnostic code, as `pgimg explain CODE`
//! prints it: `docs/explain/<CODE>.md`, embedded at build time. A test
//! checks that every code of `diag::Code` has one and no file is left over.

macro_rules! explanations {
    ($($code:literal,)*) => {
        /// Code → Markdown text.
        const TEXTS: &[(&str, &str)] = &[
            $(($code, include_str!(concat!("../docs/explain/", $code, ".md"))),)*
        ];
    };
}

explanations! {
    "PG0001",
    "PG0002",
    "PG0003",
    "PG0004",
    "PG0010",
    "PG0011",
    "PG0012",
    "PG0013",
    "PG0014",
    "PG0015",
    "PG0016",
    "PG0020",
    "PG0030",
    "PG0101",
    "PG0102",
    "PG0103",
    "PG0104",
    "PG0108",
    "PG0110",
    "PG0111",
    "PG0112",
    "PG0113",
    "PG0114",
    "PG0120",
    "PG0121",
    "PG0130",
    "PG0131",
    "PG0140",
    "PG0141",
    "PG0142",
    "PG0143",
    "PG0144",
    "PG0145",
    "PG0146",
    "PG0150",
    "PG0151",
    "PG0152",
    "PG0160",
    "PG0170",
    "PG0180",
    "PG0181",
    "PG0190",
    "PG0191",
    "PG0200",
    "PG0201",
    "PG0202",
    "PG0210",
    "PG0211",
    "PG0212",
    "PG0219",
    "PG0220",
    "PG0230",
    "PG0240",
    "PG0300",
    "PG0301",
    "PG0302",
    "PG0303",
    "PG0304",
    "PG0305",
    "PG0306",
    "PG0307",
    "PG0308",
    "PG0309",
    "PG0400",
    "PG0401",
    "PG0402",
    "PG0403",
    "PG0404",
    "PG0410",
    "PG0411",
    "PG0412",
    "PG0413",
}

/// The long explanation of a code, if it has one.
pub fn text(code: crate::diag::Code) -> Option<&'static str> {
    TEXTS
        .iter()
        .find(|(c, _)| *c == code.as_str())
        .map(|(_, t)| *t)
}

/// Every code that has an explanation file.
pub fn codes() -> impl Iterator<Item = &'static str> {
    TEXTS.iter().map(|(c, _)| *c)
}
