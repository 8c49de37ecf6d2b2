"""ISO 4217 currency codes accepted in offer terms.

The active ISO 4217 list (Debian iso-codes 4.15, updated for the amendments since: HRK withdrawn
2023, ZWL replaced by ZWG 2024, ANG replaced by XCG 2025), without the codes that are not money
one can contract in: precious metals (XAU, XAG, XPD, XPT), bond-market units (XBA-XBD), the SDR
(XDR), XSU, XUA, the testing code XTS and XXX ("no currency"). Fund codes (CLF, ...) stay.
"""

from typing import Final

_CODES: Final = """
    AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN
    BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD
    EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD
    IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL
    MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN
    PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP
    STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED
    VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
    """
CURRENCY_CODES: Final[frozenset[str]] = frozenset(_CODES.split())
