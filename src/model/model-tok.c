/* model-tok.c — the public tokenizer calls of ringkv.h, over the model's rk_tok. */
#include "core/error.h"
#include "model/model.h"

rk_status rk_tokenize(const rk_model *model, const char *text, size_t text_len, int add_bos,
                      int parse_special, rk_token **out_tokens, size_t *out_n, rk_error *err) {
    if (!model || (!text && text_len) || !out_tokens || !out_n)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "tokenize: NULL argument");
    return rk_tok_encode(model->tok, text ? text : "", text_len, add_bos, parse_special,
                         out_tokens, out_n, err);
}

int32_t rk_token_to_piece(const rk_model *model, rk_token token, int render_special, char *buf,
                          int32_t buf_size) {
    return rk_tok_piece(model->tok, token, render_special, buf, buf_size);
}

rk_token rk_model_token_bos(const rk_model *model) { return rk_tok_bos(model->tok); }
rk_token rk_model_token_eos(const rk_model *model) { return rk_tok_eos(model->tok); }
int rk_model_add_bos(const rk_model *model) { return rk_tok_add_bos(model->tok); }
int rk_model_token_is_eog(const rk_model *model, rk_token token) {
    return rk_tok_is_eog(model->tok, token);
}

rk_status rk_chat_format(const rk_model *model, const rk_chat_message *messages, size_t n,
                         int add_assistant_prompt, char **out, rk_error *err) {
    if (!model || (!messages && n) || !out)
        return rk_error_set(err, RK_ERR_INVALID_ARG, "chat: NULL argument");
    return rk_tok_chat_format(model->tok, messages, n, add_assistant_prompt, out, err);
}

int rk_model_has_chat_template(const rk_model *model) { return rk_tok_chat_template(model->tok) != NULL; }

int rk_model_strips_leading_space(const rk_model *model) {
    return rk_tok_strips_leading_space(model->tok);
}
