# Reference fits for tests/test_stats_lmer.py: lme4 + lmerTest on the tables in this folder.
#
# Run from the repository root:   Rscript tests/data/lmer/fit.R
# Needs R with lme4 and lmerTest (Debian: apt-get install r-cran-lme4 r-cran-lmertest).
# For every <name>.tsv it writes <name>_fixef.tsv (fixed effects: estimate, SE, Satterthwaite
# df, t, p), <name>_anova.tsv (type III F test of each term with Satterthwaite denominator df)
# and <name>_varcomp.tsv (REML variance components and the optimiser's theta).

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
})

here <- "tests/data/lmer"
# balanced, missing: value ~ arm * time (sessions as levels) + (1 | participant_id)
# slope: value ~ arm * months + (1 + months | participant_id)  (continuous time, random slope)
cases <- c("balanced", "missing", "slope")

write_tsv <- function(frame, path) {
  # write.table keeps 15 significant digits
  write.table(frame, path, sep = "\t", quote = FALSE, row.names = FALSE)
}

for (name in cases) {
  data <- read.delim(file.path(here, paste0(name, ".tsv")), colClasses = c(
    participant_id = "character", session_id = "character", arm = "character"))
  # treatment coding with the control arm and the first session as references, as hermesflow
  data$arm <- factor(data$arm, levels = c("control", "msc"))
  data$time <- factor(data$session_id, levels = sort(unique(data$session_id)))
  if (name == "slope") {
    fit <- lmer(value ~ arm * months + (1 + months | participant_id), data = data, REML = TRUE)
  } else {
    fit <- lmer(value ~ arm * time + (1 | participant_id), data = data, REML = TRUE)
  }

  coefs <- summary(fit, ddf = "Satterthwaite")$coefficients
  fixef <- data.frame(term = rownames(coefs), estimate = coefs[, "Estimate"],
                      se = coefs[, "Std. Error"], df = coefs[, "df"],
                      statistic = coefs[, "t value"], p = coefs[, "Pr(>|t|)"])
  write_tsv(fixef, file.path(here, paste0(name, "_fixef.tsv")))

  tab <- anova(fit, type = "III", ddf = "Satterthwaite")
  anova_out <- data.frame(term = rownames(tab), num_df = tab[, "NumDF"],
                          den_df = tab[, "DenDF"], f = tab[, "F value"],
                          p = tab[, "Pr(>F)"])
  write_tsv(anova_out, file.path(here, paste0(name, "_anova.tsv")))

  # theta: lme4's relative Cholesky factor of the random effects, column by column
  theta <- getME(fit, "theta")
  varcomp <- data.frame(name = c("sigma2", paste0("theta", seq_along(theta)), "reml_criterion"),
                        value = c(sigma(fit)^2, theta, REMLcrit(fit)))
  write_tsv(varcomp, file.path(here, paste0(name, "_varcomp.tsv")))
}

writeLines(c(
  R.version.string,
  paste("lme4", packageVersion("lme4")),
  paste("lmerTest", packageVersion("lmerTest")),
  paste("Matrix", packageVersion("Matrix")),
  paste("numDeriv", packageVersion("numDeriv"))
), file.path(here, "versions.txt"))
