// Sunlight on a panel: where the sun is, how much a clear sky lets through, what reaches a
// tilted plane, and a weather of persistent cloud regimes. Pure functions of time, place
// and seed, shared by the virtual hardware's sun and the simulator's solar day.
//
// Solar position follows NOAA's solar calculator (the "General Solar Position
// Calculations" and the NOAA_Solar_Calculations_day spreadsheet, after Meeus,
// "Astronomical Algorithms", 1991): Julian century → geometric mean longitude and anomaly
// → equation of centre → apparent longitude → obliquity → declination and equation of
// time → hour angle → zenith and azimuth. NOAA quotes ±1 min for sunrise and sunset
// between ±72° latitude.

const DEG = Math.PI / 180;
const DAY_MS = 86_400_000;

/** Seeded 32-bit generator (mulberry32): a few lines, so no dependency for it. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SunAngles {
  /** Solar declination δ, degrees. */
  declinationDeg: number;
  /** Equation of time, minutes (apparent minus mean solar time). */
  equationOfTimeMin: number;
  /** Hour angle ω, degrees, negative before solar noon. */
  hourAngleDeg: number;
  /** Geometric elevation, degrees (no refraction). */
  elevationDeg: number;
  /** Elevation corrected for atmospheric refraction (NOAA's piecewise fit), degrees. */
  apparentElevationDeg: number;
  /** Azimuth clockwise from north, degrees. */
  azimuthDeg: number;
}

/** Declination and equation of time at an instant (NOAA spreadsheet columns G–V). */
export function declinationAndEquationOfTime(timeMs: number): { declinationDeg: number; equationOfTimeMin: number } {
  const jd = timeMs / DAY_MS + 2440587.5;
  const jc = (jd - 2451545) / 36525;
  const meanLong = (280.46646 + jc * (36000.76983 + jc * 0.0003032)) % 360;
  const meanAnom = 357.52911 + jc * (35999.05029 - 0.0001537 * jc);
  const ecc = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc);
  const m = meanAnom * DEG;
  const centre = Math.sin(m) * (1.914602 - jc * (0.004817 + 0.000014 * jc)) + Math.sin(2 * m) * (0.019993 - 0.000101 * jc) + Math.sin(3 * m) * 0.000289;
  const omega = (125.04 - 1934.136 * jc) * DEG;
  const appLong = meanLong + centre - 0.00569 - 0.00478 * Math.sin(omega);
  const meanObliq = 23 + (26 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60) / 60;
  const obliq = (meanObliq + 0.00256 * Math.cos(omega)) * DEG;
  const declinationDeg = Math.asin(Math.sin(obliq) * Math.sin(appLong * DEG)) / DEG;
  const y = Math.tan(obliq / 2) ** 2;
  const l0 = meanLong * DEG;
  const eotRad = y * Math.sin(2 * l0) - 2 * ecc * Math.sin(m) + 4 * ecc * y * Math.sin(m) * Math.cos(2 * l0)
    - 0.5 * y * y * Math.sin(4 * l0) - 1.25 * ecc * ecc * Math.sin(2 * m);
  return { declinationDeg, equationOfTimeMin: (4 * eotRad) / DEG };
}

/** Where the sun stands at `timeMs` seen from latitude/longitude (east positive), NOAA columns W–AH. */
export function sunAngles(timeMs: number, latitudeDeg: number, longitudeDeg: number): SunAngles {
  const { declinationDeg, equationOfTimeMin } = declinationAndEquationOfTime(timeMs);
  const utcMin = (((timeMs % DAY_MS) + DAY_MS) % DAY_MS) / 60_000;
  // True solar time: clock time shifted by 4 min per degree of longitude and by the EoT.
  const trueSolarMin = (((utcMin + equationOfTimeMin + 4 * longitudeDeg) % 1440) + 1440) % 1440;
  const hourAngleDeg = trueSolarMin / 4 - 180;
  const lat = latitudeDeg * DEG;
  const decl = declinationDeg * DEG;
  const cosZ = clamp(Math.sin(lat) * Math.sin(decl) + Math.cos(lat) * Math.cos(decl) * Math.cos(hourAngleDeg * DEG), -1, 1);
  const zenith = Math.acos(cosZ);
  const elevationDeg = 90 - zenith / DEG;
  const denom = Math.cos(lat) * Math.sin(zenith);
  let azimuthDeg: number;
  if (Math.abs(denom) < 1e-12) azimuthDeg = latitudeDeg >= declinationDeg ? 180 : 0;
  else {
    const a = Math.acos(clamp((Math.sin(lat) * cosZ - Math.sin(decl)) / denom, -1, 1)) / DEG;
    azimuthDeg = hourAngleDeg > 0 ? (a + 180) % 360 : (540 - a) % 360;
  }
  return { declinationDeg, equationOfTimeMin, hourAngleDeg, elevationDeg, apparentElevationDeg: elevationDeg + refractionDeg(elevationDeg), azimuthDeg };
}

/** NOAA's atmospheric refraction correction (after Bennett), degrees. */
function refractionDeg(elevationDeg: number): number {
  if (elevationDeg > 85) return 0;
  const t = Math.tan(elevationDeg * DEG);
  let arcsec: number;
  if (elevationDeg > 5) arcsec = 58.1 / t - 0.07 / t ** 3 + 0.000086 / t ** 5;
  else if (elevationDeg > -0.575) arcsec = 1735 + elevationDeg * (-518.2 + elevationDeg * (103.4 + elevationDeg * (-12.79 + elevationDeg * 0.711)));
  else arcsec = -20.772 / t;
  return arcsec / 3600;
}

export interface SunTimes {
  /** UTC instants; undefined in polar day or night. */
  sunriseMs: number | undefined;
  solarNoonMs: number;
  sunsetMs: number | undefined;
  /** Geometric elevation at solar noon, degrees. */
  noonElevationDeg: number;
}

/**
 * Sunrise, solar noon and sunset of the UTC day containing `dayMs`. Sunrise and sunset
 * are the sun's upper limb on a sea-level horizon: zenith 90.833° (0.567° of refraction
 * and 0.266° of semi-diameter), NOAA's convention. The declination and EoT are taken at
 * the event itself after two refinements (NOAA's calculator does the same).
 */
export function sunTimes(dayMs: number, latitudeDeg: number, longitudeDeg: number): SunTimes {
  const midnight = Math.floor(dayMs / DAY_MS) * DAY_MS;
  const noonAt = (guessMs: number) => {
    const { equationOfTimeMin } = declinationAndEquationOfTime(guessMs);
    return midnight + (720 - 4 * longitudeDeg - equationOfTimeMin) * 60_000;
  };
  const solarNoonMs = noonAt(noonAt(midnight + DAY_MS / 2));
  const event = (sign: -1 | 1): number | undefined => {
    let t = solarNoonMs;
    for (let i = 0; i < 3; i++) {
      const { declinationDeg, equationOfTimeMin } = declinationAndEquationOfTime(t);
      const lat = latitudeDeg * DEG;
      const decl = declinationDeg * DEG;
      const cosH = Math.cos(90.833 * DEG) / (Math.cos(lat) * Math.cos(decl)) - Math.tan(lat) * Math.tan(decl);
      if (cosH < -1 || cosH > 1) return undefined;
      const haMin = (4 * Math.acos(cosH)) / DEG;
      t = midnight + (720 - 4 * longitudeDeg - equationOfTimeMin + sign * haMin) * 60_000;
    }
    return t;
  };
  const noon = sunAngles(solarNoonMs, latitudeDeg, longitudeDeg);
  return { sunriseMs: event(-1), solarNoonMs, sunsetMs: event(1), noonElevationDeg: noon.elevationDeg };
}

/** Relative optical air mass, Kasten & Young (1989): 1 / (cos z + 0.50572 (96.07995° − z)^−1.6364). */
export function airMass(elevationDeg: number): number {
  if (elevationDeg <= 0) return Infinity;
  const z = 90 - elevationDeg;
  return 1 / (Math.cos(z * DEG) + 0.50572 * (96.07995 - z) ** -1.6364);
}

export interface ClearSky {
  /** Direct normal irradiance, W/m². */
  dniWm2: number;
  /** Diffuse horizontal irradiance, W/m². */
  dhiWm2: number;
  /** Global horizontal irradiance, W/m². */
  ghiWm2: number;
}

/** Solar constant used by Meinel's fit, W/m². */
const MEINEL_SOLAR_CONSTANT = 1353;
/** Share of the beam that a clear sky scatters down as diffuse light: 10 % (Meinel & Meinel's rule of thumb, as PVEducation gives it). */
const CLEAR_DIFFUSE_SHARE = 0.1;

/**
 * Clear-sky irradiance from Meinel & Meinel (1976), "Applied Solar Energy": the beam at
 * sea level is DNI = 1353 · 0.7^(AM^0.678) W/m² (0.7: seven tenths of the beam survive one
 * air mass; 0.678: the empirical fit to the haze of a clear day), plus 10 % of it as
 * diffuse sky light.
 */
export function clearSky(elevationDeg: number): ClearSky {
  if (elevationDeg <= 0) return { dniWm2: 0, dhiWm2: 0, ghiWm2: 0 };
  const dniWm2 = MEINEL_SOLAR_CONSTANT * 0.7 ** (airMass(elevationDeg) ** 0.678);
  const dhiWm2 = CLEAR_DIFFUSE_SHARE * dniWm2;
  return { dniWm2, dhiWm2, ghiWm2: dniWm2 * Math.sin(elevationDeg * DEG) + dhiWm2 };
}

/** Global horizontal irradiance under a clear sky, Haurwitz (1945): 1098 cosθz e^(−0.057/cosθz) W/m². */
export function haurwitzGhi(elevationDeg: number): number {
  const c = Math.sin(elevationDeg * DEG);
  return c > 0 ? 1098 * c * Math.exp(-0.057 / c) : 0;
}

export interface PanelPlane {
  /** Tilt from horizontal, degrees (0 = flat). */
  tiltDeg: number;
  /** Direction the panel faces, clockwise from north, degrees (180 = due south). */
  azimuthDeg: number;
}

/** Ground reflectance for grass and soil, 0.2: the value PV design tools assume without site data. */
export const GROUND_ALBEDO = 0.2;

/** Cosine of the angle between the sun and the panel's normal (Duffie & Beckman, eq. 1.6.3). */
export function cosIncidence(sun: { elevationDeg: number; azimuthDeg: number }, plane: PanelPlane): number {
  const z = (90 - sun.elevationDeg) * DEG;
  const b = plane.tiltDeg * DEG;
  return Math.cos(z) * Math.cos(b) + Math.sin(z) * Math.sin(b) * Math.cos((sun.azimuthDeg - plane.azimuthDeg) * DEG);
}

/**
 * Plane-of-array irradiance, W/m², with the isotropic sky of Liu & Jordan (1963): the beam
 * projected on the panel, the sky's diffuse light in the share (1 + cos β)/2 of the sky
 * dome the panel sees, and the ground's reflection in the share (1 − cos β)/2.
 */
export function planeOfArray(sun: { elevationDeg: number; azimuthDeg: number }, sky: { dniWm2: number; dhiWm2: number }, plane: PanelPlane): number {
  if (sun.elevationDeg <= 0) return 0;
  const ghi = sky.dniWm2 * Math.sin(sun.elevationDeg * DEG) + sky.dhiWm2;
  const b = plane.tiltDeg * DEG;
  const beam = sky.dniWm2 * Math.max(0, cosIncidence(sun, plane));
  return beam + sky.dhiWm2 * (1 + Math.cos(b)) / 2 + ghi * GROUND_ALBEDO * (1 - Math.cos(b)) / 2;
}

export interface PvModule {
  /** Rated power at STC (1000 W/m², 25 °C cell), W_p. */
  peakW: number;
  /** Power temperature coefficient, 1/K: −0.004 is typical of crystalline silicon datasheets. */
  tempCoeffPerK: number;
  /** Nominal operating cell temperature, °C (800 W/m², 20 °C air, 1 m/s wind): 45 °C typical. */
  noctC: number;
  /** Dirt on the glass: 0.97–0.98 for a panel rinsed by rain (a few % loss). */
  soiling: number;
  /** Cable and connector losses: 0.98 (2 %) for the short leads of a small panel. */
  wiring: number;
  /** MPPT tracking times charger conversion: 0.85–0.9 for a 5 V buck charger like the BQ25895 (datasheet efficiency curves, ~90 % at 2 A). */
  chargerEfficiency: number;
}

/** A 15 W_p monocrystalline panel on a Pi-class charger, with the typical figures above. */
export const SMALL_PANEL: PvModule = { peakW: 15, tempCoeffPerK: -0.004, noctC: 45, soiling: 0.98, wiring: 0.98, chargerEfficiency: 0.88 };

/**
 * Power delivered to the battery side, W, for plane irradiance `poaWm2` and air at
 * `ambientC`: P = P_p · G/1000 · (1 + γ (T_cell − 25)) · soiling · wiring · η_charger, with
 * the NOCT cell temperature T_cell = T_air + G (NOCT − 20)/800.
 */
export function moduleOutputW(m: PvModule, poaWm2: number, ambientC: number): number {
  if (poaWm2 <= 0) return 0;
  const cellC = ambientC + (poaWm2 * (m.noctC - 20)) / 800;
  const thermal = Math.max(0, 1 + m.tempCoeffPerK * (cellC - 25));
  return m.peakW * (poaWm2 / 1000) * thermal * m.soiling * m.wiring * m.chargerEfficiency;
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}
